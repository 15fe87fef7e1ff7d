"""Real images drawn by D's density ratio: more often the ones G does not make yet.

After Lee, Kim, Ha, Shin, Yoon, "Self-Diagnosing GAN: Diagnosing Underrepresented Samples in
Generative Adversarial Networks", NeurIPS 2021. A conditional G can leave out a style that a tenth
of a class has (docs/quality.md, "Which styles are missing": MNIST's crossbar 7), and nothing in
the GAN loss asks for it back. D knows which real images G misses: for the losses on logits, the
best D's logit at an image is ``log p_data(x) / p_G(x)`` (Goodfellow et al. 2014, Prop. 1), so a
real image with a high logit is one G draws less often than the data holds it.

:class:`DiagnosingTrainer` trains as :class:`~gan_edu.training.GANTrainer` does for the first
``reweight_after`` epochs. From then on, at the end of each epoch it scores every training
image with D (a pass with no update, batch statistics as in training, D's buffers put back), and
the next epoch draws image ``i`` of class ``c`` with probability proportional to

    w_i = clamp(exp(reweight_scale * (s_i - median of s over class c)), 1 / reweight_cap, reweight_cap)
    s_i = mean + reweight_k * standard deviation of image i's logits over the last reweight_window scorings

(the paper's score: a high mean says G misses the image; a high spread that D is unsure of it),
the weights of each class rescaled to sum to its number of images, so the classes keep their
shares. At ``reweight_scale`` 1, ``exp`` of a logit difference is the estimated ratio itself: an
image G draws three times too rarely is drawn three times as often, up to the cap. R1 keeps D's
logits far flatter than the ratios they stand for (on the MNIST preset they spread by about 0.15
across real images, while the preset's G draws the crossbar 7 eight to a hundred times too
rarely), so ``reweight_scale`` sharpens them. The paper keeps its weights fixed after a first run;
here they are renewed every epoch, so an image stops being favoured once G makes it.

What it did on the MNIST preset at scale 10 (docs/results/ablation.md, thirteenth pass, three
validation seeds): the crossbar 7 came back (5 to 12% of the generated 7s, against 0.1 to 1.2%),
class 7's c' rose from 0.954 to 0.971, c' overall did not move, and GAN-test fell from 0.985 to
0.977. Not in the preset.

Each scoring costs one forward pass of D over the training set (on the MNIST preset, 3.4 s
against about 59 s for an epoch of steps without R1, on a 2-core CPU). The weights, the recent
scores and a few statistics per epoch (``reweight.json`` in the run folder: the effective share
of the data the weights keep, the largest weight) are saved, and resume restores them. The epochs
are drawn by :class:`WeightedLoader`, a :class:`~gan_edu.data.DeviceLoader` whose epoch plan
follows per-image weights. Needs a data set in memory and one process.

The project declares the trainer as an entry point of group ``gan_edu.trainers`` (pyproject.toml),
so ``--trainer DiagnosingTrainer``, ``PipelineConfig(trainer="DiagnosingTrainer")`` and a run or
report that names it find it by name; ``gan_edu.training`` itself does not import this module.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any, ClassVar

import torch

from ..data.images import ImageDataset, ImageSet
from ..data.loader import DeviceLoader, Loader
from ..domains import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt
from ..errors import GanEduError, check
from ..io import atomic_write_json
from .callbacks import Callback
from .distributed import RefusedOnEveryRank
from .gan_trainer import GANTrainer, GANTrainerConfig
from .registry import register_trainer


def diagnosis_scores(logits: torch.Tensor, k: float) -> torch.Tensor:
    """``(T, N)`` logits of N images over T scorings to ``(N,)`` scores: mean + k * standard deviation.

    >>> diagnosis_scores(torch.tensor([[1.0, 0.0], [3.0, 0.0]]), k=1.0)
    tensor([3., 0.])
    """
    mean = logits.mean(0)
    spread = logits.std(0, unbiased=False) if logits.shape[0] > 1 else torch.zeros_like(mean)
    return mean + k * spread


def density_ratio_weights(scores: torch.Tensor, labels: torch.Tensor, *, cap: float, scale: float = 1.0) -> torch.Tensor:
    """``(N,)`` sampling weights from scores (log density ratios): per class, ``exp`` of ``scale`` times
    the score less the class's median, clamped to ``[1 / cap, cap]``, then rescaled to sum to the class's count.

    >>> w = density_ratio_weights(torch.tensor([0.0, 0.0, 5.0, 1.0, 1.0]), torch.tensor([0, 0, 0, 1, 1]), cap=4.0)
    >>> [round(float(v), 3) for v in w]  # class 0: ratios 1, 1, 4 (capped), rescaled to sum 3; class 1: equal
    [0.5, 0.5, 2.0, 1.0, 1.0]
    """
    check(cap >= 1.0, f"cap={cap}: expected at least 1")
    scores, labels = scores.detach().double().cpu(), labels.cpu()
    weights = torch.ones_like(scores)
    for c in labels.unique():
        mask = labels == c
        ratio = torch.exp((scale * (scores[mask] - scores[mask].median())).clamp(-60.0, 60.0)).clamp(1.0 / cap, cap)
        weights[mask] = ratio * (mask.sum() / ratio.sum())
    return weights


class WeightedLoader(DeviceLoader):
    """A :class:`~gan_edu.data.DeviceLoader` whose epochs draw images by weight.

    ``sample_weights``: ``(N,)`` non-negative weights, one per image, or None (then it is a plain
    DeviceLoader). With weights, each position of an epoch draws image ``i`` with probability
    proportional to its weight, with replacement (times the class balance when ``balanced``); the
    draw is seeded by ``(seed, epoch)`` as every epoch plan is. A trainer may change the weights
    between epochs.
    """

    def __init__(self, dataset: ImageDataset, batch_size: int, *, sample_weights: torch.Tensor | None = None, **options: Any) -> None:
        super().__init__(dataset, batch_size, **options)
        self.sample_weights = sample_weights

    def epoch_plan(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.sample_weights is None:
            return super().epoch_plan(epoch)
        n = len(self.dataset)
        w = self.sample_weights.detach().double().cpu()
        check(
            w.shape == (n,) and bool(torch.isfinite(w).all()) and bool((w >= 0).all()) and bool(w.sum() > 0),
            f"sample_weights of shape {tuple(w.shape)}: expected {n} finite, non-negative weights, not all 0",
        )
        if self.balanced:
            w = w / torch.bincount(self.dataset.labels, minlength=self.dataset.num_classes).double()[self.dataset.labels]
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        order = torch.multinomial(w, n, replacement=True, generator=g)
        return order, torch.rand(n, generator=g) < 0.5 if self.flip else None


@dataclasses.dataclass(frozen=True)
class DiagnosingTrainerConfig(GANTrainerConfig):
    """GAN training whose real images are drawn by D's density ratio after ``reweight_after`` epochs."""

    reweight_after: NonNegativeInt = 5  # epochs on the data as it is; every later epoch draws its real images by D's scores
    reweight_window: PositiveInt = 3  # scorings (one per epoch end) whose logits make an image's score: mean + k * spread
    reweight_k: NonNegativeFloat = 1.0  # weight of the spread of an image's logits in its score (0: the mean alone)
    reweight_scale: PositiveFloat = 1.0  # multiplies the score differences before exp: 1 reads D's logit as the log density ratio; a D held smooth by R1 spreads its logits far less (MNIST preset: 0.15 across images), and a larger value sharpens
    reweight_cap: float = 5.0  # largest weight against the class median, and 1/cap the smallest (at least 1; 1: no reweighting)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.reweight_cap >= 1.0, f"reweight_cap={self.reweight_cap}: expected a number at least 1")


class Rescore(Callback):
    """At each epoch's end (before its checkpoint): the trainer's scoring and new weights."""

    def on_epoch_end(self, trainer: Any) -> None:
        trainer.rescore()


@register_trainer
class DiagnosingTrainer(GANTrainer):
    """:class:`GANTrainer` that draws real images by D's estimate of how rarely G makes them: see the module's text."""

    config: DiagnosingTrainerConfig
    config_class: ClassVar[type[DiagnosingTrainerConfig]] = DiagnosingTrainerConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.world.active:
            raise RefusedOnEveryRank(
                f"{type(self).__name__} under torchrun: its weights are computed by one process; expected a single-process run"
            )
        self.real_logits: torch.Tensor | None = None  # (T, N): the last scorings' logits, oldest first
        self.real_weights: torch.Tensor | None = None  # (N,): the current sampling weights, None before reweighting
        self.reweight_log: list[dict[str, Any]] = []
        self.loader: WeightedLoader | None = None

    def default_callbacks(self) -> Iterable[Callback]:
        return (*super().default_callbacks(), Rescore())

    def make_loader(self, data: ImageSet | Loader) -> Loader:
        """A :class:`WeightedLoader` of ``data`` (or of a given DeviceLoader's data and settings), with the current weights."""
        loader = data if isinstance(data, WeightedLoader) else None
        if loader is None:
            given = data if isinstance(data, DeviceLoader) else None
            dataset = given.dataset if given is not None else data
            if not isinstance(dataset, ImageDataset):
                raise GanEduError(
                    f"{type(self).__name__} with data of type {type(dataset).__name__}: it scores every training image each "
                    "epoch; expected a data set held in memory (an ImageDataset)"
                )
            cfg = self.config
            settings = {"batch_size": cfg.batch_size, "seed": cfg.seed, "flip": cfg.flip, "balanced": cfg.balanced}
            if given is not None:
                settings = {k: getattr(given, k) for k in settings}
            loader = WeightedLoader(dataset, device=self.device, **settings)
        loader.sample_weights = self.real_weights
        self.loader = loader
        return loader

    @torch.no_grad()
    def score_real(self) -> torch.Tensor:
        """D's logit at every training image, in the data set's order: ``(N,)`` float32 on the CPU.

        D runs in training mode (batch statistics, as in its updates) in batches of ``batch_size``,
        without DiffAugment; its buffers (batch norm's running statistics) are put back after.
        """
        d, n, b = self.discriminator, len(self.loader.dataset), self.config.batch_size
        saved = {name: buf.clone() for name, buf in d.named_buffers()}
        was_training = d.training
        d.train()
        out = []
        try:
            for start in range(0, n, b):
                idx = torch.arange(start, min(start + b, n), device=self.loader.device)
                images, labels = self.loader.gather(idx, torch.zeros_like(idx, dtype=torch.bool))
                with self.autocast():
                    logits = self.d_forward(self.prepare_batch(images), labels if d.num_classes else None)
                out.append(logits.float().cpu())
        finally:
            for name, buf in d.named_buffers():
                buf.copy_(saved[name])
            d.train(was_training)
        return torch.cat(out)

    def rescore(self) -> None:
        """After epoch ``self.epoch``: record D's logits when the window reaches into reweighting, and
        set the next epoch's weights once ``reweight_after`` epochs are done."""
        cfg = self.config
        if self.loader is None or self.epoch <= cfg.reweight_after - cfg.reweight_window or cfg.reweight_cap == 1.0:
            return
        logits = self.score_real()[None]  # (1, N)
        self.real_logits = logits if self.real_logits is None else torch.cat([self.real_logits, logits])[-cfg.reweight_window :]
        if self.epoch < cfg.reweight_after:
            return
        labels = self.loader.dataset.labels
        self.real_weights = density_ratio_weights(diagnosis_scores(self.real_logits, cfg.reweight_k), labels, cap=cfg.reweight_cap, scale=cfg.reweight_scale)
        self.loader.sample_weights = self.real_weights
        w = self.real_weights
        self.reweight_log.append({
            "epoch": self.epoch,
            "scorings": int(self.real_logits.shape[0]),
            "effective_share": round(float(w.sum() ** 2 / (w**2).sum() / len(w)), 4),  # Kish's effective sample size / N
            "max_weight": round(float(w.max()), 3),
            "share_over_2": round(float((w > 2.0).double().mean()), 4),  # images drawn more than twice as often as before
            "mean_logit": round(float(self.real_logits[-1].mean()), 4),
        })
        if self.writes_files:
            atomic_write_json(self.out_dir / "reweight.json", {"settings": {k: getattr(cfg, k) for k in (
                "reweight_after", "reweight_window", "reweight_k", "reweight_scale", "reweight_cap")}, "epochs": self.reweight_log})

    def extra_state(self) -> dict[str, Any]:
        state = super().extra_state()
        if self.real_logits is not None:
            state["real_logits"] = self.real_logits
        if self.real_weights is not None:
            state["real_weights"] = self.real_weights
        state["reweight_log"] = self.reweight_log
        return state

    def load_extra_state(self, state: dict[str, Any]) -> None:
        super().load_extra_state(state)
        self.real_logits = state.get("real_logits")
        self.real_weights = state.get("real_weights")
        self.reweight_log = list(state.get("reweight_log", []))
