"""Bit-accurate CPU model ('fixed_pt') of MaxPool (process.py).

Each step it receives the (W, H, C) input, runs one step of
adacal.runtime_sim.maxpool.Stream on it (the arithmetic the integer
simulator runs through maxpool.run; it is not repeated here) and sends the
result in the same step, like Lava's neurons and adacal's BurstIF
(LoihiProtocol, one run_spk per step, time_step counting from 1).  Values
are int64 inside (sums of payloads), int32 on the ports like every graded
message (lava/proc/dense/models.py a_out, lava/proc/conv/models.py).
See docs/loihi2.md, "Max pooling".
"""
from __future__ import annotations

import numpy as np

from adacal.backends.loihi2.compat import ensure_lava as _ensure_lava

_ensure_lava()

from lava.magma.core.decorator import implements, requires, tag  # noqa: E402
from lava.magma.core.model.py.model import PyLoihiProcessModel  # noqa: E402
from lava.magma.core.model.py.ports import PyInPort, PyOutPort  # noqa: E402
from lava.magma.core.model.py.type import LavaPyType  # noqa: E402
from lava.magma.core.resources import CPU  # noqa: E402
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol  # noqa: E402

from adacal.backends.loihi2.max_pool.process import MaxPool  # noqa: E402
from adacal.runtime_sim.maxpool import Stream  # noqa: E402


@implements(proc=MaxPool, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyMaxPoolModelFixed(PyLoihiProcessModel):
    """Integer max pool: runtime_sim.maxpool.Stream, one step per Lava step."""

    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    hold: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=32)
    period: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=32)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        w, h, c = proc_params["shape"]
        # the window arithmetic works on (..., H, W): the model keeps (C, H, W)
        self._stream = Stream(proc_params["geometry"], proc_params["how"], (c, h, w), np.int64)
        self._out_shape = tuple(proc_params["out_shape"])

    def run_spk(self) -> None:
        # always consume the input; several OutPorts into s_in arrive summed
        # (PyInPortVectorDense.recv, lava/magma/core/model/py/ports.py)
        a = self.s_in.recv()
        period = int(self.period.item())
        # time_step counts from 1 (lava/magma/core/model/py/model.py)
        local = self.time_step if period == 0 else (self.time_step - 1) % period + 1
        if local == 1:
            self._stream.reset()  # a new sample: the sums restart
        if local <= int(self.hold.item()):
            # the input has not arrived yet (or belongs to the previous sample)
            self.s_out.send(np.zeros(self._out_shape, np.int32))
            return
        out = self._stream.step(np.asarray(a, np.int64).transpose(2, 1, 0))  # (W, H, C) -> (C, H, W)
        self.s_out.send(np.ascontiguousarray(out.transpose(2, 1, 0)).astype(np.int32))
