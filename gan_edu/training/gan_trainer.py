"""Training a GAN: :class:`GANTrainer`, its plumbing in one place and small hooks for what a variant changes.

One training step, after Goodfellow et al. (2014), Algorithm 1, as in the PyTorch DCGAN example:

1. Update D: maximise ``log D(x) + log(1 - D(G(z)))`` (in general: minimise the loss's
   ``discriminator_loss``, plus its penalty) on a real batch and a fake batch from fresh noise.
2. Update G: every ``d_steps`` batches, minimise the loss's ``generator_loss`` on the same fake
   batch, judged by the updated D (non-saturating: maximise ``log D(G(z))``; minimax: minimise
   ``log(1 - D(G(z)))``).

The plumbing (precision, the distributed wrapper, the penalty, the optimizer steps, the metrics)
lives in :meth:`~GANTrainer.discriminate`, :meth:`~GANTrainer.update_discriminator` and
:meth:`~GANTrainer.update_generator`, which every step goes through. To make a variant, from the
lightest touch to the heaviest:

* a new loss on D's logits: subclass :class:`~gan_edu.losses.GANLoss` (no trainer change);
* an objective that needs more than the logits (the images, the labels, the step): override
  :meth:`~GANTrainer.discriminator_objective` or :meth:`~GANTrainer.generator_objective`;
  a different fake batch: :meth:`~GANTrainer.fake_batch`. The penalty and DDP's averaging stay;
* a step of another shape (more calls of D, say): override :meth:`~GANTrainer.discriminator_step`
  or :meth:`~GANTrainer.generator_step`, calling D through ``discriminate(..., update=True)``
  and updating through ``update_discriminator`` / ``update_generator``, as the default steps do.

Two additions that make DCGANs markedly better, both switches of :class:`GANTrainerConfig`,
both in the plumbing so no variant can lose them: ``diffaugment`` passes every image D sees,
real or fake, in both updates, through the same kind of differentiable random transform
(:mod:`gan_edu.augment`, in :meth:`~GANTrainer.discriminate`); ``ema`` keeps an average of G's
weights after every G update (:mod:`.ema`, in :meth:`~GANTrainer.update_generator`), which the
sample grids, the saved ``generator/`` and so the export use.

``tutorials/05_your_own_variant.ipynb`` and ``examples/custom_loss.py`` show the three.

Under ``torchrun`` (several processes) G and D are wrapped in DistributedDataParallel. DDP
expects one forward per backward, and D's step calls D more than once (real, fake): D's step
calls go through :class:`JointForward`, one module call, which is what DDP wraps. G's update
judges the fake batch with the plain D, whose weights are frozen in that call, so DDP is not
involved there. Each process draws the global noise batch and keeps its slice, as it does with
the real batch: the maths of one process with the same batch. Calls of the plain D in D's step
would not be averaged over the processes: go through ``discriminate``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import torch

from ..augment import DiffAugment
from ..data.loader import Batch
from ..errors import check
from ..losses import GANLoss, NonSaturatingLoss
from ..models.base import Discriminator, Generator
from .callbacks import Callback
from .commands import command_for
from .config import GANTrainerConfig
from .distributed import JointForward, RefusedOnEveryRank
from .ema import EMA
from .pictures import LossCurves, SampleGrid, SaveModels
from .trainer import Trainer


class GANTrainer(Trainer):
    """Trains a generator against a discriminator with a :class:`~gan_edu.losses.GANLoss`.

    Args:
        generator: the G to train (moved to the trainer's device).
        discriminator: the D to train; same ``image_shape`` and ``num_classes`` as G.
        loss: default :class:`~gan_edu.losses.NonSaturatingLoss`.
        config: default :class:`GANTrainerConfig`.
        out_dir: the run folder; sample grids, curves, GIF and the models are written there.
        callbacks: more callbacks.
        meta: extra facts for the run's ``config.json`` (the CLI records the model's registry name).
    """

    config: GANTrainerConfig
    config_class: ClassVar[type[GANTrainerConfig]] = GANTrainerConfig  # a variant with options of its own sets its subclass
    graph_safe: ClassVar[bool] = True  # the step below can be recorded as a CUDA graph (cuda_graph; see .capture)
    step_methods: ClassVar[tuple[str, ...]] = (
        "train_step", "discriminator_step", "generator_step", "fake_batch", "discriminator_objective", "generator_objective",
        "discriminate", "update_discriminator", "update_generator",
    )
    #: True: every call of D also returns its class logits (a D with ``aux_head``), which
    #: :meth:`discriminate` keeps in ``self.class_logits`` for the objectives (AC-GAN: :mod:`.acgan`).
    wants_class_logits: ClassVar[bool] = False

    def __init__(
        self,
        generator: Generator,
        discriminator: Discriminator,
        loss: GANLoss | None = None,
        config: GANTrainerConfig | None = None,
        *,
        out_dir: str | Path | None = None,
        callbacks: Iterable[Callback] = (),
        meta: dict[str, Any] | None = None,
    ) -> None:
        config = config if config is not None else self.config_class()
        check(isinstance(config, self.config_class), f"config of type {type(config).__name__}: expected a {self.config_class.__name__}")
        check(
            generator.image_shape == discriminator.image_shape and generator.num_classes == discriminator.num_classes,
            f"generator makes {generator.image_shape} images with num_classes={generator.num_classes}, "
            f"discriminator expects {discriminator.image_shape} with num_classes={discriminator.num_classes}: expected the same",
        )
        super().__init__(config, out_dir=out_dir, callbacks=callbacks)
        self.generator = self.speed.prepare_module(generator)
        self.discriminator = self.speed.prepare_module(discriminator)
        self.g_forward = self.speed.compiled(self.speed.data_parallel(self.generator))  # the same weights, maybe compiled and DDP
        self.d_forward = self.speed.compiled(self.discriminator)  # D as a judge (G's step): not updated, no DDP
        self.d_joint = self.speed.data_parallel(JointForward(self.d_forward, with_classes=self.wants_class_logits))  # D's step: all its D calls, one forward per backward
        self.d_judge = JointForward(self.d_forward, with_classes=self.wants_class_logits)  # D as G's judge: the plain D, no DDP
        self.class_logits: tuple[torch.Tensor, ...] = ()  # with wants_class_logits: (N, K) class logits of discriminate's last call, per batch
        self.loss = loss if loss is not None else NonSaturatingLoss()
        if self.world.active and self.loss.has_penalty:  # every rank refuses alike: the command says it once
            raise RefusedOnEveryRank(
                f"loss {self.loss!r} under torchrun: gradient penalties are computed outside DistributedDataParallel and would not "
                "be averaged across processes; expected a loss without a penalty (minimax, non-saturating, hinge, least-squares) and no --r1"
            )
        self.d_steps = config.d_steps if config.d_steps is not None else self.loss.d_steps
        self.meta = dict(meta or {})
        betas = (config.beta1, config.beta2)
        self.opt_g = self.make_adam(self.generator.parameters(), config.lr_g, betas)
        self.opt_d = self.make_adam(self.discriminator.parameters(), config.lr_d, betas)
        # All training noise comes from this generator, on the device: seeded, saved, restored.
        self.noise = torch.Generator(device=self.device).manual_seed(config.seed)
        # Differentiable augmentation of everything D sees (a no-op without a policy), its own random numbers.
        self.augment = DiffAugment(config.diffaugment, torch.Generator(device=self.device).manual_seed(config.seed + 3))
        self.ema = EMA(self.generator, config.ema_decay) if config.ema else None  # the average of G, never trained

    @property
    def sampling_generator(self) -> Generator:
        """The G to sample from: the average of G's weights when ``ema`` is on, else G itself."""
        return self.ema.module if self.ema is not None else self.generator  # type: ignore[return-value]

    # -- what the Trainer needs ---------------------------------------------------------------
    def modules(self) -> dict[str, torch.nn.Module]:
        modules: dict[str, torch.nn.Module] = {"generator": self.generator, "discriminator": self.discriminator}
        if self.ema is not None:
            modules["generator_ema"] = self.ema.module
        return modules

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.opt_g, "discriminator": self.opt_d}

    def default_callbacks(self) -> Iterable[Callback]:
        return (SampleGrid(), SaveModels(), LossCurves())

    def run_config(self) -> dict[str, Any]:
        data = getattr(self, "data", None)
        dataset = getattr(data, "dataset", data)
        return {
            **super().run_config(),
            **self.meta,
            "generator": {"class": type(self.generator).__name__, "config": self.generator.config.to_dict()},
            "discriminator": {"class": type(self.discriminator).__name__, "config": self.discriminator.config.to_dict()},
            "loss": {"name": self.loss.name, "options": self.loss.options(), "d_steps": self.d_steps},
            "data": {"name": dataset.name, "options": dataset.options, "class_names": list(dataset.class_names), "size": len(dataset)} if dataset is not None else None,
        }

    def resume_command(self) -> str:
        run = self.out_dir or "RUN_DIR"
        command = command_for(type(self))
        if command is None:  # a class of a notebook: only this session knows it
            return f"gan_edu.training.runs.resume_gan_run({str(run)!r}) in the session that defines {type(self).__name__}"
        return f"{command} train --resume {run}"

    def graph_blocker(self) -> str | None:
        if self.loss.has_penalty:
            return f"loss {self.loss.name!r} has a gradient penalty (double backward)"
        if self.d_steps > 1:
            return f"d_steps={self.d_steps}: steps with and without a G update differ (one recorded step has one shape)"
        return super().graph_blocker()

    def graph_generators(self) -> list[torch.Generator]:
        return [self.noise, self.augment.generator]

    def extra_state(self) -> dict[str, Any]:
        state = {"noise": self.noise.get_state(), "augment": self.augment.generator.get_state()}
        if self.ema is not None:
            state["ema_updates"] = self.ema.updates
        return state

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if "noise" in state:
            self.noise.set_state(state["noise"].cpu())
        if "augment" in state:
            self.augment.generator.set_state(state["augment"].cpu())
        if self.ema is not None:
            self.ema.updates = int(state.get("ema_updates", 0))

    # -- one step -----------------------------------------------------------------------------
    def train_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """A D update on every batch; a G update on every ``d_steps``-th.

        One fake batch serves both updates, as in the PyTorch DCGAN example: D sees it detached,
        G is trained through it. Batches without a G update build no graph through G.
        """
        real, labels = batch
        real = self.prepare_batch(real)  # (N, C, H, W) in [-1, 1]
        labels = labels if self.generator.num_classes is not None else None
        update_g = (self.step + 1) % self.d_steps == 0
        with torch.set_grad_enabled(update_g), self.autocast():
            fake = self.fake_batch(real.shape[0], labels)  # (N, C, H, W)
        metrics = self.discriminator_step(real, fake.detach(), labels)
        if update_g:
            metrics.update(self.generator_step(fake, labels))
        return metrics

    def discriminator_step(self, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """(1) Update D: maximise log D(x) + log(1 - D(G(z))), i.e. minimise :meth:`discriminator_objective` (+ penalty).

        Args:
            real: ``(N, C, H, W)`` training images.
            fake: ``(N, C, H, W)`` generated images, detached from G.
            labels: ``(N,)`` classes of both (conditional models), else None.
        """
        real_logits, fake_logits = self.discriminate((real, labels), (fake, labels), update=True)  # (N,), (N,)
        loss_d, terms = objective_terms(self.discriminator_objective(real_logits, fake_logits, real=real, fake=fake, labels=labels), "d_loss")
        return {**self.update_discriminator(loss_d, real, fake, labels, real_logits=real_logits, fake_logits=fake_logits), **terms}

    def generator_step(self, fake: torch.Tensor, labels: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """(2) Update G: minimise :meth:`generator_objective` (non-saturating: maximise log D(G(z))).

        Args:
            fake: ``(N, C, H, W)`` generated images, still attached to G's graph.
            labels: ``(N,)`` their classes (conditional models), else None.
        """
        (fake_logits,) = self.discriminate((fake, labels))  # (N,), by the freshly updated D
        loss_g, terms = objective_terms(self.generator_objective(fake_logits, fake=fake, labels=labels), "g_loss")
        return {**self.update_generator(loss_g), **terms}

    # -- the hooks: what a variant changes ------------------------------------------------------
    def fake_batch(self, n: int, labels: torch.Tensor | None) -> torch.Tensor:
        """``n`` images from G for fresh noise (and the given labels): ``(n, C, H, W)``.

        Under torchrun ``n`` is this process's slice of the global batch; the noise is the global
        batch's, sliced, so the run draws the same noise whatever the number of processes.
        """
        return self.g_forward(self.latent_batch(n), labels)

    def latent_batch(self, n: int) -> torch.Tensor:
        """Fresh noise ``(n, latent_dim)`` from the run's seeded stream: this process's slice of the global batch's."""
        z = self.generator.sample_latent(n * self.world.size, generator=self.noise, device=self.device)  # (global N, latent_dim), same on every rank
        return self.world.slice(z)  # (n, latent_dim): this process's part

    def discriminator_objective(
        self, real_logits: torch.Tensor, fake_logits: torch.Tensor, *, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor | None
    ) -> Objective:
        """What D minimises, from its fp32 logits ``(N,)`` on the real and the fake batch: the loss's D term.

        The images ``(N, C, H, W)`` and labels D judged come along for objectives that need them.
        The loss's penalty is added after this, by :meth:`update_discriminator`. An override may
        return named scalar terms instead of one scalar, ``{"d_loss": loss_term, "d_mine": mine}``:
        D minimises their sum, and each is logged (and kept in the history) under its name, so
        ``d_loss`` stays the loss's own term (without a ``"d_loss"`` entry it is the sum).
        """
        return self.loss.discriminator_loss(real_logits, fake_logits)

    def generator_objective(self, fake_logits: torch.Tensor, *, fake: torch.Tensor, labels: torch.Tensor | None) -> Objective:
        """What G minimises, from D's fp32 logits ``(N,)`` on the fake batch: the loss's G term
        (or named terms, as :meth:`discriminator_objective` may return; ``g_loss`` for the loss's)."""
        return self.loss.generator_loss(fake_logits)

    # -- the plumbing every step goes through ---------------------------------------------------
    def discriminate(self, *batches: tuple[torch.Tensor, torch.Tensor | None], update: bool = False) -> tuple[torch.Tensor, ...]:
        """D's fp32 logits ``(N,)`` for each ``(images, labels)`` batch: one call of D per batch, under autocast.

        Every call of D in a step goes through here (so what D sees is decided in one place).
        Each batch is its own call, so batch norm never mixes real and fake images.

        Args:
            *batches: ``(images (N, C, H, W), labels (N,) or None)`` pairs.
            update: True in D's own step: all calls are one forward of the DistributedDataParallel
                wrapper, so D's gradients are averaged over the processes. False: D only judges
                (G's step); its weights are frozen for the call, so backward computes none for them.
        """
        with self.autocast():
            if self.augment:  # DiffAugment: the same kind of transform on everything D sees
                batches = tuple((self.augment(images), labels) for images, labels in batches)
            if update:
                logits = self.d_joint(batches)
            else:
                self.discriminator.requires_grad_(False)
                try:
                    logits = self.d_judge(batches)
                finally:
                    self.discriminator.requires_grad_(True)
        if self.wants_class_logits:  # (logits (N,), class logits (N, K)) per batch
            self.class_logits = tuple(classes.float() for _, classes in logits)
            logits = tuple(x for x, _ in logits)
        return tuple(x.float() for x in logits)  # losses in fp32

    def update_discriminator(
        self, loss_d: torch.Tensor, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor | None, *,
        real_logits: torch.Tensor, fake_logits: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Add the loss's penalty (R1, WGAN-GP's) to D's objective ``loss_d``, step D's optimizer, report.

        With ``penalty_every = N`` it is computed on every N-th step only, weighted by N (StyleGAN2's lazy
        regularisation: about 1/N of the double backward's cost); ``d_penalty`` is logged unweighted.

        Args:
            loss_d: D's objective (a scalar), built from logits of :meth:`discriminate` with ``update=True``.
            real, fake, labels: the batches D judged, for the penalty.
            real_logits, fake_logits: ``(N,)``, for the metrics.
        """
        every = self.config.penalty_every
        penalty = self.loss.penalty(self.discriminator, real, fake.float(), labels) if self.step % every == 0 else None
        total = loss_d if penalty is None else loss_d + every * penalty  # lazy: N times the weight on every N-th step
        self.optimize(total, self.opt_d)
        metrics = {
            "d_loss": loss_d.detach(),
            "d_real": torch.sigmoid(real_logits.detach()).mean(),  # D(x): D's belief that reals are real
            "d_fake": torch.sigmoid(fake_logits.detach()).mean(),  # D(G(z)) before the update
        }
        if penalty is not None:
            metrics["d_penalty"] = penalty.detach()
        return metrics

    def update_generator(self, loss_g: torch.Tensor) -> dict[str, torch.Tensor]:
        """Step G's optimizer on its objective ``loss_g`` (a scalar); every G update ends here, then reports."""
        self.optimize(loss_g, self.opt_g)
        if self.ema is not None:
            self.ema.update(self.generator)  # the average follows G after each of its updates
        return {"g_loss": loss_g.detach()}


#: What an objective hook returns: one scalar, or named scalar terms whose sum is minimised.
Objective = torch.Tensor | dict[str, torch.Tensor]


def objective_terms(objective: Objective, main: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The scalar to minimise and the terms to log: ``(objective, {})`` for a scalar; for named
    terms their sum, and each term detached (``main``, the loss's own term, reported as such).

    >>> total, terms = objective_terms({"d_loss": torch.tensor(1.0), "d_extra": torch.tensor(0.5)}, "d_loss")
    >>> float(total), sorted(terms)
    (1.5, ['d_extra', 'd_loss'])
    """
    if isinstance(objective, torch.Tensor):
        return objective, {}
    check(
        isinstance(objective, dict) and len(objective) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) and v.ndim == 0 for k, v in objective.items()),
        f"objective {type(objective).__name__}: expected a scalar tensor or a dict of named scalar tensors (e.g. {{{main!r}: ..., 'my_term': ...}})",
    )
    values = list(objective.values())
    total = sum(values[1:], values[0])
    return total, {k: v.detach() for k, v in objective.items()}
