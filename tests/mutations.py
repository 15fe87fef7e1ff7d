"""The check before a release: break one line of a key feature, run the tests that guard it, and
require that they fail. A test suite that stays green while a feature is broken guards nothing.

    python tests/mutations.py --list            # the breakages, one line each
    python tests/mutations.py                   # all of them (about 10 minutes on 2 cores)
    python tests/mutations.py ema diffaugment   # some of them, by name

Each breakage is applied to a copy of the tracked files (``git ls-files``) in a temporary folder,
never to the working tree, and the named tests run there with this Python. A breakage is
*caught* when pytest reports failed tests (exit code 1); a collection or usage error (exit code
2 and up) counts as not caught, since it says nothing about the feature. The script exits 1 if any
breakage escapes, and first checks that the same tests pass on the unbroken copy.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    """One line of ``path`` changed from ``old`` to ``new`` (``old`` must occur once), and the tests that must then fail."""

    name: str
    what: str  # the feature broken, in words
    path: str
    old: str
    new: str
    tests: tuple[str, ...]  # pytest node ids (file, file::test or file -k expression as "file::-k EXPR")


MUTATIONS = [
    Mutation("resume-noise", "resume forgets the noise generator's state", "gan_edu/training/gan_trainer.py",
             'self.noise.set_state(state["noise"].cpu())', "pass",
             ("tests/test_training.py::test_resume_is_exact",)),
    Mutation("ema", "the average of G is never updated", "gan_edu/training/gan_trainer.py",
             "self.ema.update(self.generator)  # the average", "pass  # the average",
             ("tests/test_recipe.py::test_the_average_follows_g_after_every_g_update_by_the_formula",)),
    Mutation("diffaugment", "G's step shows D un-augmented fakes", "gan_edu/training/gan_trainer.py",
             "if self.augment:  # DiffAugment", "if self.augment and update:  # DiffAugment",
             ("tests/test_recipe.py::test_every_image_d_sees_in_both_steps_went_through_diffaugment",)),
    Mutation("onnx-fold", "batch norm folded without its eps", "gan_edu/export/fold.py",
             "torch.sqrt(bn.running_var.double() + bn.eps)", "torch.sqrt(bn.running_var.double())",
             ("tests/test_export_optimized.py::test_fold_batchnorm_keeps_the_outputs_of_generator_and_discriminator",)),
    Mutation("onnx-parity", "the export's parity check never refuses", "gan_edu/export/graph.py",
             "if not diff <= limit:  # also catches NaN", "if False:  # also catches NaN",
             ("tests/test_export.py::test_parity_check_catches_a_graph_that_differs_and_leaves_no_file",)),
    Mutation("labels-onnx", "OnnxGenerator takes labels out of range", "runtime/gan_edu_runtime/generator.py",
             "check(lo >= 0 and hi < self.num_classes,", "check(True,",
             ("tests/test_labels.py::test_onnx_generator_refuses_labels_out_of_range",)),
    Mutation("labels-torch", "the torch models take labels out of range", "gan_edu/models/base.py",
             "0 <= lo and hi < module.num_classes,", "True,",
             ("tests/test_labels.py::test_torch_models_refuse_labels_out_of_range",)),
    Mutation("fid-black", "gan-edu fid measures black images instead of the generator's", "gan_edu/cli/fid.py",
             "feats_fake = inception_features(model, generator_batches(generator, args.n, seed=args.seed, batch_size=args.batch_size))",
             "feats_fake = inception_features(model, (b * 0 for b in generator_batches(generator, args.n, seed=args.seed, batch_size=args.batch_size)))",
             ("tests/test_fid.py::test_gan_edu_fid_on_the_shipped_generator",)),
    Mutation("capture-cpu", "a device-to-host copy (.cpu()) inside the recorded step", "gan_edu/training/gan_trainer.py",
             'return {"g_loss": loss_g.detach()}', 'return {"g_loss": loss_g.detach().cpu()}',
             ("tests/test_capture.py::test_recorded_gan_step_gives_the_eager_weights",)),
    Mutation("lazy-penalty", "the lazy penalty is not weighted by its interval", "gan_edu/training/gan_trainer.py",
             "else loss_d + every * penalty", "else loss_d + penalty",
             ("tests/test_losses.py::test_a_lazy_penalty_weights_the_penalty_by_n",)),
]


def copy_tree(destination: Path) -> None:
    """The tracked files (and the untracked ones git does not ignore) of the working tree, into ``destination``."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def run_tests(folder: Path, tests: tuple[str, ...]) -> int:
    path = os.pathsep.join([str(folder), str(folder / "runtime")])  # the copy's gan_edu and its light package, not the installed ones
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    argv = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "--no-header", "-o", "addopts=", *tests]
    return subprocess.run(argv, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode


def apply(folder: Path, m: Mutation) -> None:
    path = folder / m.path
    text = path.read_text()
    count = text.count(m.old)
    if count != 1:
        raise SystemExit(f"mutation {m.name}: {m.path} holds {count} copies of {m.old!r}; expected exactly one (update tests/mutations.py)")
    path.write_text(text.replace(m.old, m.new))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="mutations to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--no-baseline", action="store_true", help="skip the run of the tests on the unbroken copy")
    args = parser.parse_args(argv)
    if args.list:
        for m in MUTATIONS:
            print(f"{m.name:14} {m.what} ({m.path}) -> {', '.join(m.tests)}")
        return 0
    unknown = set(args.names) - {m.name for m in MUTATIONS}
    if unknown:
        parser.error(f"unknown mutation(s) {', '.join(sorted(unknown))}; expected some of {', '.join(m.name for m in MUTATIONS)}")
    chosen = [m for m in MUTATIONS if not args.names or m.name in args.names]
    escaped = []
    with tempfile.TemporaryDirectory(prefix="gan-edu-mutations-") as tmp:
        clean = Path(tmp) / "clean"
        copy_tree(clean)
        if not args.no_baseline:
            tests = tuple(dict.fromkeys(t for m in chosen for t in m.tests))
            code = run_tests(clean, tests)
            if code != 0:
                print(f"the guarding tests fail on the unbroken code (pytest exit {code}): fix them first", file=sys.stderr)
                return 2
        for m in chosen:
            folder = Path(tmp) / m.name
            shutil.copytree(clean, folder)
            apply(folder, m)
            start = time.monotonic()
            code = run_tests(folder, m.tests)
            verdict = "caught" if code == 1 else f"ESCAPED (pytest exit {code})"
            print(f"{m.name:14} {verdict:24} {time.monotonic() - start:6.1f} s  {m.what}", flush=True)
            if code != 1:
                escaped.append(m.name)
            shutil.rmtree(folder)
    print(f"{len(chosen) - len(escaped)} of {len(chosen)} mutations caught" + (f"; escaped: {', '.join(escaped)}" if escaped else ""))
    return 1 if escaped else 0


if __name__ == "__main__":
    sys.exit(main())
