"""A training step recorded once and replayed: CUDA graphs, and their rehearsal on the CPU.

A DCGAN step on a large GPU is bound by kernel launches, not arithmetic: hundreds of small kernels,
each launched by Python. A CUDA graph records the kernels of one step once and replays them with
one call. What a replay does is fixed at capture:

* every tensor it reads or writes is the same memory each time: the inputs are copied into
  static buffers (for a device-resident set, the batch's indices and flips: the gather happens in
  the graph), and the outputs (the step's metrics) are the same tensors each time;
* every number that is not a tensor is frozen: a learning rate or an average's decay that changes
  from step to step must be a tensor on the device, updated by the step itself;
* nothing may read a value back to the host (``.item()``, ``if tensor:``, ``.cpu()``, ``.tolist()``,
  ``torch.cuda.synchronize()``), nor make an output whose size depends on values (``nonzero``,
  ``x[mask]``, ``unique``);
* random numbers come from generators registered with the graph, which advance on each replay.

:class:`CapturedStep` runs a step function eagerly for a few warm-up steps (on a side stream on
CUDA, as capture requires), records it on the next and replays it from then on. Where it records:

* ``cuda``: a ``torch.cuda.CUDAGraph`` (:class:`CudaGraph`);
* the CPU rehearsal (:class:`~.rehearsal.Rehearsal`): every aten operation of the step is
  recorded through a ``TorchDispatchMode`` and re-run on replay with the same arguments, into the
  same output tensors. It keeps the rules above (a host read or copy raises, even where the CPU
  copy would be free, Python numbers are frozen, the recording run does not count as a step), so
  a CPU run shows whether a step can be captured and whether the replays give the eager step's
  weights. Trainers made inside ``with rehearse():`` use it on the CPU (:func:`rehearse`).

A :class:`~gan_edu.training.Trainer` owns a :class:`StepRecorder`. Its :meth:`StepRecorder.blocker`
is the one place that decides whether the step is recorded: the optimizer settings (fused,
capturable Adam), autocast's cache and the recording all follow it. Why a step cannot be
recorded comes from the trainer (``Trainer.graph_blocker``); the trainer then runs the eager
step, with eager settings, and says why once.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch

from .devices import eager_settings
from .rehearsal import CaptureError, Rehearsal, StepFn

__all__ = ["CaptureError", "CapturedStep", "CudaGraph", "Rehearsal", "StepRecorder", "backend_for", "rehearse"]

if TYPE_CHECKING:
    from .config import TrainerConfig
    from .distributed import World
    from .trainer import Trainer

log = logging.getLogger("gan_edu.training")

class CapturedStep:
    """A step function ``fn(*inputs) -> metrics`` recorded once, then replayed.

    Args:
        fn: the step; takes tensors of fixed shapes, returns a dict of scalar tensors. It must
            keep the rules of the module docstring.
        backend: ``"cuda"`` (:class:`CudaGraph`) or ``"rehearsal"`` (:class:`Rehearsal`, CPU).
        generators: the ``torch.Generator`` objects the step draws from (registered with the graph).
        state: a callable giving the tensors the step updates in place (weights, buffers,
            optimizer states); the rehearsal restores them after recording, since recording a
            CUDA graph runs nothing.
        warmup: eager steps before recording (cuDNN picks its algorithms, optimizers make their state).
        key: a callable giving what the recording depends on (tensors, numbers), kept as :attr:`key`.

    Attributes:
        replays: steps run by replaying the recording.
    """

    def __init__(
        self, fn: StepFn, *, backend: str, generators: Sequence[torch.Generator] = (),
        state: Callable[[], Iterable[torch.Tensor]] = tuple, warmup: int = 3, key: Callable[[], tuple[Any, ...]] = tuple,
    ) -> None:
        self.fn = fn
        self.recorder: CudaGraph | Rehearsal = CudaGraph(generators) if backend == "cuda" else Rehearsal(generators, state)
        self.warmup = warmup
        self.calls = 0
        self.replays = 0
        self.inputs: list[torch.Tensor] | None = None  # the static input buffers
        self.outputs: dict[str, torch.Tensor] | None = None
        self.key_fn = key
        self.gather: Callable[..., Any] | None = None  # set when the inputs are indices and flips of a device-resident set
        self.key: tuple[Any, ...] | None = None  # what the recording holds, taken when it is made (RecordedSteps.capture_step)

    def fits(self, *inputs: torch.Tensor) -> bool:
        """Whether ``inputs`` have the shapes and dtypes of the static buffers (always, before they exist)."""
        return self.inputs is None or all(a.shape == b.shape and a.dtype == b.dtype for a, b in zip(inputs, self.inputs))

    def __call__(self, *inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """One step on ``inputs``; the returned tensors are overwritten by the next step."""
        if self.inputs is None:
            self.inputs = [x.detach().clone() for x in inputs]
        else:
            for buffer, x in zip(self.inputs, inputs):
                buffer.copy_(x)
        self.calls += 1
        if self.outputs is None:
            if self.calls <= self.warmup:
                return self.recorder.warm_up(self.fn, self.inputs)
            self.outputs = self.recorder.record(self.fn, self.inputs)
            self.key = self.key_fn()
        self.recorder.replay()
        self.replays += 1
        return self.outputs


class CudaGraph:
    """Records a step as a ``torch.cuda.CUDAGraph``: warm-up on a side stream, capture, replay."""

    def __init__(self, generators: Sequence[torch.Generator]) -> None:
        self.generators = list(generators)
        self.graph: Any = None

    def warm_up(self, fn: StepFn, inputs: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            out = fn(*inputs)
        torch.cuda.current_stream().wait_stream(stream)
        return out

    def record(self, fn: StepFn, inputs: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        graph = torch.cuda.CUDAGraph()
        for generator in self.generators:
            graph.register_generator_state(generator)  # its draws advance on every replay
        torch.cuda.synchronize()
        # thread_local: another thread's CUDA calls (DataLoader's pinning thread) do not break the capture
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            outputs = fn(*inputs)
        self.graph = graph
        return outputs

    def replay(self) -> None:
        self.graph.replay()


class StepRecorder:
    """What a :class:`~gan_edu.training.Trainer` needs to record its step; the trainer owns one.

    Attributes:
        backend: ``"cuda"``, ``"rehearsal"`` (the CPU, inside :func:`rehearse`) or None (steps run eagerly).
        captured: the recorded step, made when ``fit`` starts (:meth:`capture_step`); None: eager.
        failed: why recording failed, once it has: the run stays eager from then on.
    """

    def __init__(self, device: torch.device) -> None:
        self.backend = backend_for(device)
        self.device_type = device.type
        self.captured: CapturedStep | None = None
        self.inputs_gather: Callable[..., Any] | None = None  # this epoch's inputs are indices and flips: the gather making a batch of them
        self.failed: str | None = None
        self.said: str | None = None  # the last reason said, so that it is said once

    def blocker(self, trainer: Trainer) -> str | None:
        """Why ``trainer``'s step is not recorded; None when it is. The one place that decides."""
        if not trainer.config.cuda_graph:
            return "cuda_graph is off"
        if self.backend is None:
            return f"device {self.device_type}: CUDA graphs need CUDA"
        return self.failed or trainer.graph_blocker()

    def say(self, reason: str) -> None:
        """Log why the eager step runs, once per reason."""
        if self.said != reason:
            self.said = reason
            log.warning("cuda_graph: %s; running the eager step", reason)

    def capture_step(self, trainer: Trainer, loader: Any = None) -> CapturedStep | None:
        """The recorded step when ``cuda_graph`` is on and it can apply; else None, saying why once."""
        reason = self.blocker(trainer)
        if reason is not None:  # the eager step, with eager settings (cuda_graph may have been switched off since)
            eager_settings(trainer.optimizers().values())
            if trainer.config.cuda_graph:
                self.say(reason)
            return None
        assert self.backend is not None
        # The same tensors (a resume replaces optimizer states) and numbers: the recording still holds.
        previous, key = self.captured, self.key(trainer)
        if previous is not None and previous.key is not None and len(previous.key) == len(key):
            if all(a is b or (not isinstance(a, torch.Tensor) and a == b) for a, b in zip(previous.key, key)):
                return previous
        gather = getattr(loader, "gather", None)  # a device-resident set: the gather, convert and flip go in the graph
        train_step = trainer.train_step
        step = CapturedStep(
            (lambda idx, flips: train_step(gather(idx, flips))) if gather is not None else (lambda images, labels: train_step((images, labels))),
            backend=self.backend, generators=trainer.graph_generators(), state=trainer.graph_state, key=lambda: self.key(trainer),
        )
        step.gather = gather
        return step

    @staticmethod
    def key(trainer: Trainer) -> tuple[Any, ...]:
        """What a recording depends on: the state's tensors, the generators, ``graph_constants``."""
        return (*trainer.graph_state(), *trainer.graph_generators(), *trainer.graph_constants())

    def step_inputs(self, loader: Any, epoch: int, start: int) -> Any:
        """What :meth:`run_step` takes for each batch of ``epoch`` from ``start``: the batches, or, for
        a recorded step over a device-resident set, each batch's indices and flips (gathered in the graph)."""
        self.inputs_gather = self.captured.gather if self.captured is not None else None  # kept if the step falls back mid-epoch
        if self.inputs_gather is not None:
            return loader.iterate_plan(epoch, start)
        return loader.iterate(epoch, start=start)

    def run_step(self, trainer: Trainer, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One step: the recorded one when there is one and the batch has its shapes, else ``train_step``."""
        captured, gather = self.captured, self.inputs_gather
        eager = lambda: trainer.train_step(gather(*batch) if gather is not None else batch)  # noqa: E731
        if captured is None or not captured.fits(*batch):
            return eager()
        if captured.outputs is not None or captured.calls < captured.warmup:
            return captured(*batch)
        try:  # this call records: what the step cannot hold shows now
            return captured(*batch)
        except Exception as error:  # noqa: BLE001 - any failure to record means: run eagerly, and say why
            self.captured = None
            self.failed = f"recording the step failed ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"
            eager_settings(trainer.optimizers().values())  # from now on the eager step, with eager settings
            self.say(self.failed)
            return eager()


def class_blocker(cls: type) -> str | None:
    """Why steps of trainer class ``cls`` cannot be recorded, from the class alone: it does not
    declare ``graph_safe``, or overrides one of its ``step_methods`` below the class that did."""
    if not getattr(cls, "graph_safe", False):
        return f"{cls.__name__} does not declare its step graph-safe (graph_safe = True)"
    declared = next(k for k in cls.__mro__ if "graph_safe" in vars(k))
    below = cls.__mro__[: cls.__mro__.index(declared)]
    step_methods: tuple[str, ...] = getattr(cls, "step_methods", ())
    overridden = [m for m in step_methods if next(k for k in cls.__mro__ if m in vars(k)) in below]
    if overridden:
        return (
            f"{cls.__name__} overrides {', '.join(overridden)}; once that code keeps the rules of gan_edu.training.capture "
            f"(no .item(), no per-step Python numbers), set graph_safe = True in {cls.__name__}"
        )
    return None


def loop_blocker(cls: type, config: TrainerConfig, world: World) -> str | None:
    """Why a step of trainer class ``cls`` with loop options ``config`` in ``world`` cannot be
    recorded (:func:`class_blocker`, torchrun, fp16, compile); None when nothing blocks it."""
    if (reason := class_blocker(cls)) is not None:
        return reason
    if world.active:
        return "under torchrun DistributedDataParallel averages gradients with hooks a recorded step does not replay"
    if config.precision == "fp16":
        return "precision fp16: the loss scaler reads back every step whether the gradients overflowed"
    if config.compile:
        return "compile=True: torch.compile makes graphs of its own (use one or the other)"
    return None


def step_state(modules: Iterable[torch.nn.Module], optimizers: Iterable[torch.optim.Optimizer]) -> list[torch.Tensor]:
    """The tensors a step updates in place: the modules' weights and buffers, the optimizers' states."""
    tensors = [t for m in modules for t in m.state_dict(keep_vars=True).values()]
    for opt in optimizers:
        tensors += [t for s in opt.state.values() for t in s.values() if isinstance(t, torch.Tensor)]
    return tensors


_rehearsing = threading.local()


@contextlib.contextmanager
def rehearse() -> Iterator[None]:
    """Within it, trainers made on the CPU record their step with the CPU rehearsal, as on CUDA
    with a CUDA graph: a variant author's check, on a laptop, that a step can be recorded.

    Make the trainer inside the ``with`` (its optimizers take the recorded step's settings when
    it is made), with ``cuda_graph=True``; ``trainer.captured.replays`` then counts the replayed
    steps, and a step that breaks the rules says why and runs eagerly (docs/training.md).

    >>> import torch
    >>> from gan_edu.models import build_gan
    >>> from gan_edu.training import GANTrainer, GANTrainerConfig
    >>> from gan_edu.data import load_dataset
    >>> data = load_dataset("shapes", "train", n=64)
    >>> g, d = build_gan("dcgan", image_shape=data.image_shape, g_channels=4, d_channels=4)
    >>> config = GANTrainerConfig(max_steps=6, batch_size=8, device="cpu", progress=False, cuda_graph=True)
    >>> with rehearse():
    ...     trainer = GANTrainer(g, d, config=config)
    ...     _ = trainer.fit(data)
    >>> trainer.captured.replays  # 3 warm-up steps, then the recording replayed
    3
    """
    before = getattr(_rehearsing, "on", False)
    _rehearsing.on = True
    try:
        yield
    finally:
        _rehearsing.on = before


def backend_for(device: torch.device) -> str | None:
    """The recorder for ``device``: ``"cuda"``; on the CPU ``"rehearsal"`` inside :func:`rehearse`, else None (eager)."""
    if device.type == "cuda":
        return "cuda"
    return "rehearsal" if getattr(_rehearsing, "on", False) and device.type == "cpu" else None
