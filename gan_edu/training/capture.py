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
* the CPU rehearsal (:class:`Rehearsal`, for tests): every aten operation of the step is recorded
  through a ``TorchDispatchMode`` and re-run on replay with the same arguments, into the same
  output tensors. It keeps the rules above (a host read or copy raises, even where the CPU copy
  would be free, Python numbers are frozen, the
  recording run does not count as a step), so a CPU test shows whether a step can be captured and
  whether the replays give the eager step's weights.

Why a step cannot be captured is said by the trainer (``Trainer.graph_blocker``); the trainer then
runs the eager step and says why once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from ..errors import GanEduError

log = logging.getLogger("gan_edu.training")

StepFn = Callable[..., dict[str, torch.Tensor]]

#: Operations that read a tensor's value on the host (or whose output size depends on values):
#: a CUDA graph cannot hold them.
HOST_READS = frozenset(
    getattr(torch.ops.aten, name).default
    for name in ("_local_scalar_dense", "is_nonzero", "item", "nonzero", "masked_select", "equal")
    if hasattr(getattr(torch.ops.aten, name, None), "default")
)
#: Operations that make a tensor from Python data: the data would be frozen into the graph.
HOST_DATA = frozenset(getattr(torch.ops.aten, name).default for name in ("lift_fresh", "lift_fresh_copy") if hasattr(torch.ops.aten, name))
#: Operations whose output's size depends on the input's values (the host must read them to size
#: the output): ``unique``, ``repeat_interleave`` by a tensor of counts, ``bincount``.
DATA_DEPENDENT_SHAPES = frozenset(
    getattr(getattr(torch.ops.aten, name), overload)
    for name, overload in (("_unique", "default"), ("_unique2", "default"), ("unique_dim", "default"), ("unique_consecutive", "default"),
                           ("repeat_interleave", "Tensor"), ("repeat_interleave", "self_Tensor"), ("bincount", "default"))
    if hasattr(getattr(torch.ops.aten, name, None), overload)
)
#: Indexing that takes a boolean mask (``x[mask]``) finds the mask's True entries on the host.
MASK_INDEXING = frozenset(op for op in (torch.ops.aten.index.Tensor, torch.ops.aten.index_put.default, torch.ops.aten.index_put_.default))
#: Methods that copy a tensor to the host or wait for the device. On a CPU they run nothing a
#: dispatch mode sees (the tensor already is on the host), so the rehearsal refuses them by name.
HOST_COPIES = ((torch.Tensor, "cpu"), (torch.Tensor, "numpy"), (torch.Tensor, "tolist"), (torch.Tensor, "pin_memory"),
               (torch.cuda, "synchronize"), (torch.cuda.Stream, "synchronize"), (torch.cuda.Event, "synchronize"))


class CaptureError(GanEduError):
    """A step did something a captured step cannot hold (a host read, Python data)."""


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


class Rehearsal:
    """The CPU stand-in of :class:`CudaGraph`: records aten operations, re-runs them on replay.

    Recording runs the step (a CPU cannot record without running), then puts back every tensor
    the step updated in place and every generator's state, so that, as with a CUDA graph, the
    recording is not a step; the replay right after it is.
    """

    def __init__(self, generators: Sequence[torch.Generator], state: Callable[[], Iterable[torch.Tensor]]) -> None:
        self.generators = list(generators)
        self.state = state
        self.ops: list[tuple[Any, tuple[Any, ...], dict[str, Any], list[Any] | None]] = []

    def warm_up(self, fn: StepFn, inputs: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        return fn(*inputs)

    def record(self, fn: StepFn, inputs: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        saved = [(t, t.detach().clone()) for t in self.state()]
        generators = [(g, g.get_state()) for g in self.generators] + [(None, torch.get_rng_state())]
        mode = _Recorder()
        try:
            with mode:
                outputs = fn(*inputs)
        finally:  # recorded or not, nothing it did stays (a CUDA graph's capture runs nothing)
            with torch.no_grad():
                for t, before in reversed(saved + mode.saved):
                    t.copy_(before)
            for g, before in generators:
                g.set_state(before) if g is not None else torch.set_rng_state(before)
        self.ops = mode.ops
        return outputs

    @torch.no_grad()
    def replay(self) -> None:
        for func, args, kwargs, outs in self.ops:
            result = func(*args, **kwargs)
            if outs is not None:  # a new tensor each run: into the recorded one, which later operations read
                for recorded, new in zip(outs, tree_flatten(result)[0]):
                    if isinstance(recorded, torch.Tensor):
                        recorded.copy_(new)


class _Recorder(TorchDispatchMode):
    """Records each aten operation with its arguments; refuses host reads, host copies,
    synchronisation, outputs sized by values, and Python data."""

    _recording = threading.local()  # set on the recording thread only: another thread's .cpu() is not the step's

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[tuple[Any, tuple[Any, ...], dict[str, Any], list[Any] | None]] = []
        self.saved: list[tuple[torch.Tensor, torch.Tensor]] = []  # tensors written in place, as they were before
        self._seen: set[int] = set()
        self._patched: list[tuple[Any, str, Any]] = []

    def __enter__(self) -> _Recorder:
        for owner, name in HOST_COPIES:
            original = getattr(owner, name)
            self._patched.append((owner, name, original))
            setattr(owner, name, _refused_on_recording_thread(original, f"{getattr(owner, '__name__', owner)}.{name}"))
        _Recorder._recording.active = True
        return super().__enter__()

    def __exit__(self, *exc: Any) -> None:
        _Recorder._recording.active = False
        for owner, name, original in reversed(self._patched):
            setattr(owner, name, original)
        self._patched.clear()
        return super().__exit__(*exc)

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        if func in HOST_READS:
            raise CaptureError(f"{func} in a captured step reads a tensor's value on the host: a CUDA graph cannot hold it; keep the step on the device")
        if func in HOST_DATA:
            raise CaptureError(f"{func} in a captured step makes a tensor from Python data: its value would be frozen into the graph")
        if func in DATA_DEPENDENT_SHAPES or (func in MASK_INDEXING and any(
                isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in (args[1] if len(args) > 1 else ()) or ())):
            raise CaptureError(f"{func} in a captured step makes an output whose size depends on the values (the host must read them): "
                               "a CUDA graph cannot hold it; use fixed shapes (masked_fill, torch.where)")
        schema = func._schema
        for argument, value in zip(schema.arguments, list(args) + [kwargs.get(a.name) for a in schema.arguments[len(args):]]):
            if argument.alias_info is not None and argument.alias_info.is_write:
                for t in tree_flatten(value)[0]:
                    if isinstance(t, torch.Tensor) and id(t) not in self._seen:
                        self._seen.add(id(t))
                        self.saved.append((t, t.detach().clone()))
        result = func(*args, **kwargs)
        aliased = any(r.alias_info is not None for r in schema.returns)
        outs = None if aliased else tree_flatten(result)[0]
        if not (aliased and not any(r.alias_info.is_write for r in schema.returns if r.alias_info is not None)):
            self.ops.append((func, args, kwargs, outs))  # views are metadata: nothing to re-run
        return result


def _refused_on_recording_thread(original: Any, name: str) -> Any:
    """``original``, raising :class:`CaptureError` when called on the thread that records a step."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        if getattr(_Recorder._recording, "active", False):
            raise CaptureError(f"{name}() in a captured step copies to the host or waits for the device: a CUDA graph cannot hold it; keep the step on the device")
        return original(*args, **kwargs)

    return refuse


class RecordedSteps:
    """What a :class:`~gan_edu.training.Trainer` needs to record its step (mixed into it).

    ``cuda_graph`` on and the blockers below all absent, :meth:`capture_step` makes a
    :class:`CapturedStep` of ``train_step`` when ``fit`` starts, and :meth:`run_step` replays it.
    """

    #: True where ``train_step`` keeps the rules of this module (tensors of fixed shapes in and
    #: out, no host reads, per-step numbers as device tensors).
    graph_safe: ClassVar[bool] = False
    #: The methods a step is made of. A subclass that overrides one of them runs eagerly until it
    #: declares ``graph_safe = True`` itself, saying its own code keeps the rules too.
    step_methods: ClassVar[tuple[str, ...]] = ("train_step",)

    config: Any
    device: torch.device
    world: Any
    captured: CapturedStep | None
    inputs_gather: Callable[..., Any] | None = None  # this epoch's inputs are indices and flips: the gather to make a batch of them

    def graph_blocker(self) -> str | None:
        """Why this run's step cannot be recorded as a CUDA graph; None when it can."""
        cls = type(self)
        if not cls.graph_safe:
            return f"{cls.__name__} does not declare its step graph-safe (graph_safe = True)"
        declared = next(k for k in cls.__mro__ if "graph_safe" in vars(k))
        overridden = [m for m in cls.step_methods if next(k for k in cls.__mro__ if m in vars(k)) in cls.__mro__[: cls.__mro__.index(declared)]]
        if overridden:
            return (
                f"{cls.__name__} overrides {', '.join(overridden)}; once that code keeps the rules of gan_edu.training.capture "
                f"(no .item(), no per-step Python numbers), set graph_safe = True in {cls.__name__}"
            )
        if self.world.active:
            return "under torchrun DistributedDataParallel averages gradients with hooks a recorded step does not replay"
        if self.config.precision == "fp16":
            return "precision fp16: the loss scaler reads back every step whether the gradients overflowed"
        if self.config.compile:
            return "compile=True: torch.compile makes graphs of its own (use one or the other)"
        return None

    def graph_generators(self) -> list[torch.Generator]:
        """The random generators the step draws from (registered with the graph)."""
        return []

    def graph_state(self) -> list[torch.Tensor]:
        """The tensors a step updates in place: weights, buffers, optimizer states."""
        tensors = [t for m in self.modules().values() for t in m.state_dict(keep_vars=True).values()]  # type: ignore[attr-defined]
        for opt in self.optimizers().values():  # type: ignore[attr-defined]
            tensors += [t for s in opt.state.values() for t in s.values() if isinstance(t, torch.Tensor)]
        return tensors

    def step_inputs(self, loader: Any, epoch: int, start: int) -> Any:
        """What :meth:`run_step` takes for each batch of ``epoch`` from ``start``: the batches, or, for
        a recorded step over a device-resident set, each batch's indices and flips (gathered in the graph)."""
        self.inputs_gather = self.captured.gather if self.captured is not None else None  # kept if the step falls back mid-epoch
        if self.inputs_gather is not None:
            return loader.iterate_plan(epoch, start)
        return loader.iterate(epoch, start=start)

    def capture_step(self, loader: Any = None) -> CapturedStep | None:
        """The recorded step when ``cuda_graph`` is on and it can apply; else None, saying why once."""
        if not self.config.cuda_graph:
            return None
        backend = backend_for(self.device)
        reason = f"device {self.device.type}: CUDA graphs need CUDA" if backend is None else self.graph_blocker()
        if reason is not None:
            say_once(self, reason)
            return None
        # The same tensors (a resume replaces optimizer states) and numbers: the recording still holds.
        previous, key = self.captured, self.graph_key()
        if previous is not None and previous.key is not None and len(previous.key) == len(key):
            if all(a is b or (not isinstance(a, torch.Tensor) and a == b) for a, b in zip(previous.key, key)):
                return previous
        gather = getattr(loader, "gather", None)  # a device-resident set: the gather, convert and flip go in the graph
        train_step = self.train_step  # type: ignore[attr-defined]
        step = CapturedStep(
            (lambda idx, flips: train_step(gather(idx, flips))) if gather is not None else (lambda images, labels: train_step((images, labels))),
            backend=backend, generators=self.graph_generators(), state=self.graph_state, key=self.graph_key,
        )
        step.gather = gather
        return step

    def graph_key(self) -> tuple[Any, ...]:
        """What a recording depends on: the state's tensors, the generators, :meth:`graph_constants`."""
        return (*self.graph_state(), *self.graph_generators(), *self.graph_constants())

    def graph_constants(self) -> tuple[Any, ...]:
        """The Python numbers a recorded step holds that a new ``fit`` may change (the schedule's length)."""
        return ()

    def run_step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One step: the recorded one when there is one and the batch has its shapes, else ``train_step``."""
        captured, gather = self.captured, self.inputs_gather
        eager = lambda: self.train_step(gather(*batch) if gather is not None else batch)  # type: ignore[attr-defined]  # noqa: E731
        if captured is None or not captured.fits(*batch):
            return eager()
        if captured.outputs is not None or captured.calls < captured.warmup:
            return captured(*batch)
        try:  # this call records: what the step cannot hold shows now
            return captured(*batch)
        except Exception as error:  # noqa: BLE001 - any failure to record means: run eagerly, and say why
            self.captured = None
            say_once(self, f"recording the step failed ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})")
            return eager()


def backend_for(device: torch.device) -> str | None:
    """The recorder for ``device``: ``"cuda"``, or None where steps run eagerly (the CPU)."""
    return "cuda" if device.type == "cuda" else None


def say_once(trainer: Any, reason: str) -> None:
    """Log why ``trainer`` runs its eager step, once per trainer."""
    if getattr(trainer, "_graph_reason_said", None) != reason:
        trainer._graph_reason_said = reason
        log.warning("cuda_graph: %s; running the eager step", reason)
