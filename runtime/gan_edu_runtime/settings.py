"""The onnxruntime session settings every gan-edu session uses: threads per physical core, sequential
execution, the memory arena and patterns, denormals flushed (why: :mod:`gan_edu_runtime.session`
and docs/onnx.md, "Session settings")."""

from __future__ import annotations

import os
from typing import Any

from .errors import check


def physical_cores() -> int:
    """Physical cores this process may run on (hyper-threads count once), at least 1.

    Linux: the distinct (package, core) pairs of ``/proc/cpuinfo`` among the CPUs of the
    process's affinity mask; elsewhere ``os.cpu_count()``.
    """
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
    cores, cpu, package = set(), None, "0"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "processor":
                    cpu, package = int(value), "0"
                elif key == "physical id":
                    package = value
                elif key == "core id" and cpu in allowed:
                    cores.add((package, value))
    except (OSError, ValueError):
        pass
    return max(1, min(len(cores) or len(allowed), len(allowed)))


def session_options(*, intra_op_num_threads: int | None = None, level: str = "all") -> Any:
    """The :class:`onnxruntime.SessionOptions` every gan-edu session uses (see the module docstring).

    Args:
        intra_op_num_threads: threads per call; None: :func:`physical_cores` (0: onnxruntime's own choice).
        level: graph optimizations: ``"all"``, ``"extended"`` (no hardware-specific layouts: what
            the cache stores) or ``"none"``.
    """
    import onnxruntime as ort

    check(
        intra_op_num_threads is None or (isinstance(intra_op_num_threads, int) and intra_op_num_threads >= 0),
        f"intra_op_num_threads={intra_op_num_threads!r}: expected an int >= 0",
    )
    levels = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL, "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}
    options = ort.SessionOptions()
    options.graph_optimization_level = levels[level]
    options.intra_op_num_threads = physical_cores() if intra_op_num_threads is None else intra_op_num_threads
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL  # a chain of layers: nothing to run side by side
    options.enable_cpu_mem_arena = True  # reuse freed blocks instead of asking the OS per call
    options.enable_mem_pattern = True  # plan each batch shape's buffers once, then reuse the plan
    options.add_session_config_entry("session.set_denormal_as_zero", "1")  # denormals are slow on x86 and invisible in an image
    return options
