"""The CPU rehearsal of a recorded step: it records a step's aten operations and re-runs them on
replay, keeping the rules of a CUDA graph (see :mod:`.capture`), so a test on the CPU shows whether
a step can be captured and whether the replays give the eager step's weights.

Variant authors use it through :func:`gan_edu.training.capture.rehearse`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from ..errors import GanEduError

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


