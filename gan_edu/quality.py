"""The evaluation layer's measurements that need a model and data: what an fp16 or int8 variant costs.

Export judges a variant by its pixels alone (:mod:`gan_edu.export.variants`); whether the
difference matters is a question for a classifier. :class:`ClassifierJudge` answers it with an
experiment's test classifier c (a ``gan-edu pipeline`` folder): the fp32 graph's and the
variant's images, drawn from the same noise, are scored for GAN-test accuracy (is each image the
class asked for?) and for the Fréchet distance of c's features to the real evaluation images.
The judge is handed to the export as a plain object::

    from gan_edu.export import export_generator
    from gan_edu.quality import ClassifierJudge

    export_generator("runs/mnist/gan", "g_int8.onnx", quantize="int8", judge=ClassifierJudge("runs/mnist"))

(``gan-edu export --quality-run EXPERIMENT_DIR`` does the same.)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .data.datasets import load_dataset
from .data.splits import split_off
from .errors import GanEduError, check
from .metrics import accuracy, frechet_distance
from .models.base import GANModule  # (gan_edu.models registers the classes from_pretrained names)
from .models.classifier import predict


class ClassifierJudge:
    """GAN-test and Fréchet distance of a variant's images and the fp32 graph's, by an experiment's classifier c.

    Args:
        experiment: a ``gan-edu pipeline`` folder (``c/classifier`` and ``report.json``); it is
            checked here, before anything is exported.

    Raises:
        GanEduError: not a pipeline folder.
    """

    def __init__(self, experiment: str | os.PathLike[str]) -> None:
        self.experiment = Path(experiment)
        self.classifier_dir, self.report_path = self.experiment / "c" / "classifier", self.experiment / "report.json"
        check(self.classifier_dir.is_dir() and self.report_path.is_file(),
              f"--quality-run {self.experiment}: expected a gan-edu pipeline folder (with c/classifier and report.json)")

    def __call__(self, reference: np.ndarray, candidate: np.ndarray, labels: np.ndarray | None) -> dict[str, Any]:
        """The cost entries ``quality_run``, ``real_images``, ``gan_test`` and ``frechet`` (each ``{"fp32", "variant", "change"}``).

        Args:
            reference, candidate: uint8 ``(N, C, H, W)`` images of the fp32 graph and of the variant.
            labels: their intended classes.
        """
        experiment = self.experiment
        check(labels is not None, "a quality run needs a conditional generator (GAN-test asks c for each image's intended class)")
        assert labels is not None
        c = GANModule.from_pretrained(self.classifier_dir)
        check(tuple(c.config.image_shape) == reference.shape[1:], f"--quality-run {experiment}: its classifier takes images {tuple(c.config.image_shape)}, the generator makes {reference.shape[1:]}")
        try:
            real = experiment_real_images(json.loads(self.report_path.read_text())["settings"], len(reference))
        except (KeyError, ValueError, OSError, GanEduError) as e:
            raise GanEduError(f"--quality-run {experiment}: cannot load its real evaluation images ({e})") from None
        real_features = predict(c, real, features=True).numpy()
        result: dict[str, Any] = {"quality_run": str(experiment), "real_images": len(real)}
        gan_test, frechet = {}, {}
        for name, images in (("fp32", reference), ("variant", candidate)):
            gan_test[name] = accuracy(predict(c, images).numpy(), labels)
            frechet[name] = frechet_distance(real_features, predict(c, images, features=True).numpy())
        result["gan_test"] = {**gan_test, "change": gan_test["variant"] - gan_test["fp32"]}
        result["frechet"] = {**frechet, "change": frechet["variant"] - frechet["fp32"]}
        return result


def experiment_real_images(settings: dict[str, Any], n: int) -> np.ndarray:
    """Up to ``n`` uint8 ``(N, C, H, W)`` images of the split an experiment evaluated on (its ``settings``)."""
    options: dict[str, Any] = {}
    if settings["dataset"] == "shapes":
        options = {k: settings[k2] for k, k2 in (("n", "num_images"), ("channels", "channels")) if settings.get(k2) is not None}
    else:
        options = {k: settings[k] for k in ("data_root", "download") if settings.get(k) is not None}
    if settings.get("eval_split") == "validation":
        _, evaluation = split_off(load_dataset(settings["dataset"], "train", **options), settings["validation_images"], seed=settings["seed"])
    else:
        evaluation = load_dataset(settings["dataset"], "test", **{k: v for k, v in options.items() if k != "n"})
    return evaluation.images[:n].numpy()
