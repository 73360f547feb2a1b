"""CUDA graphs: capture what a function launches on a stream once, replay it with one call.

A training step is ~4 launches per time step and layer (the recurrent product and the fused cell
kernel, forward and backward) plus ~40 per window: some 300 at T 64. Launched from Python one by
one, each costs ~10-30 us of host time, more than most of them run on the GPU. Captured into a
graph (stream capture, `cuStreamBeginCapture` in relaxed mode), the whole step is one
`cuGraphLaunch`, and the GPU runs the kernels back to back.

What a graph fixes at capture: every kernel's arguments (device pointers, sizes, Python scalars)
and the host addresses of its copies. So a captured step reads everything that changes from step
to step from device buffers that it first fills from pinned host buffers (the window's ids, the
optimizer's scalars: step.py), and the caller must not allocate, free or synchronise inside
`enqueue`. Through `cuda.bindings` (a dependency of numba-cuda); not under the simulator.
"""

from __future__ import annotations

from rnn_cli.cuda.backend import numba_cuda, simulator_enabled

cuda = numba_cuda()


def available() -> bool:
    """Whether graphs can be captured here (a real GPU with cuda.bindings' driver API)."""
    if simulator_enabled():
        return False
    try:
        from cuda.bindings import driver  # noqa: F401
    except ImportError:
        return False
    return True


def _ok(result, what: str):
    """The values after the status of a cuda.bindings call; RuntimeError unless it succeeded."""
    from cuda.bindings import driver as cu

    status, rest = result[0], result[1:]
    if status != cu.CUresult.CUDA_SUCCESS:
        _, name = cu.cuGetErrorName(status)
        raise RuntimeError(f"{what}: {name.decode() if isinstance(name, bytes) else status}")
    return rest[0] if len(rest) == 1 else rest


class Graph:
    """The launches of `enqueue()` on `stream` (a numba stream), captured; `launch()` replays
    them on the same stream."""

    def __init__(self, stream, enqueue):
        from cuda.bindings import driver as cu

        self._cu, self.stream = cu, stream
        self.graph = self.exe = None
        mode = cu.CUstreamCaptureMode.CU_STREAM_CAPTURE_MODE_RELAXED
        _ok(cu.cuStreamBeginCapture(stream.handle, mode), "cuStreamBeginCapture")
        try:
            with cuda.defer_cleanup():  # no cuMemFree while capturing
                enqueue()
        finally:
            result = cu.cuStreamEndCapture(stream.handle)  # ends it even when enqueue failed
        self.graph = _ok(result, "cuStreamEndCapture")
        self.exe = _ok(cu.cuGraphInstantiate(self.graph, 0), "cuGraphInstantiate")
        try:
            self.nodes = int(cu.cuGraphGetNodes(self.graph)[2])
        except Exception:  # only for the log
            self.nodes = -1
        _ok(cu.cuGraphUpload(self.exe, stream.handle), "cuGraphUpload")

    def launch(self) -> None:
        _ok(self._cu.cuGraphLaunch(self.exe, self.stream.handle), "cuGraphLaunch")

    def close(self) -> None:
        cu = self._cu
        if self.exe is not None:
            cu.cuGraphExecDestroy(self.exe)
            self.exe = None
        if self.graph is not None:
            cu.cuGraphDestroy(self.graph)
            self.graph = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass
