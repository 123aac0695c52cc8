"""Bit-accurate CPU model ('fixed_pt') of BurstIF (process.py).

Per step: v += a_in + bias; k = clip(v // threshold, lo, max_spikes);
v -= k * threshold; send k (lo = -max_spikes for a signed population,
max(-sent, -max_spikes) for a memory population, sent += k, else 0):
runtime_sim/loihi2_arith.py's burst_step, the integer simulator's
arithmetic.  The state is int64, the payload int32 (as
PyDenseModelBitAcc's a_out, lava/proc/dense/models.py); floor_divide floors
also for negative v, exactly the integer model.  The model follows Lava's own
fixed-point neurons (lava/proc/lif/models.py, lava/proc/graded/models.py):
LoihiProtocol, one run_spk per step, receive and send in the same step.
See docs/loihi2.md, "The BurstIF process".
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

from adacal.backends.loihi2.burst_if.process import BurstIF  # noqa: E402
from adacal.runtime_sim.loihi2_arith import burst_step  # noqa: E402


@implements(proc=BurstIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyBurstIFModelFixed(PyLoihiProcessModel):
    """Integer BurstIF: graded spike counts, per-neuron threshold and bias."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    v: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=64)
    v_init: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=64)
    threshold: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=32)
    bias: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=32)
    max_spikes: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=32)
    signed: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=1)
    memory: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=1)
    sent: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=32)
    hold: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=32)
    period: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=32)

    def run_spk(self) -> None:
        # always consume the input; several OutPorts into a_in arrive summed
        # (PyInPortVectorDense.recv, lava/magma/core/model/py/ports.py)
        a = self.a_in.recv().astype(np.int64)
        period = int(self.period.item())
        # time_step counts from 1 (lava/magma/core/model/py/model.py)
        local = self.time_step if period == 0 else (self.time_step - 1) % period + 1
        if local <= int(self.hold.item()):
            # held in reset: the input has not arrived yet (or belongs to the
            # previous sample); docs/loihi2.md, "Timing"
            self.v[...] = self.v_init
            self.sent[...] = 0
            self.s_out.send(np.zeros(self.v.shape, np.int32))
            return
        # a signed payload (k < 0) arrives intact: a channel has the sending
        # port's type, int32 (lava/magma/compiler/builders/channel_builder.py
        # line 148), and although Dense declares its s_in bool
        # (lava/proc/dense/models.py line 63), PyInPortVectorDense.recv adds the
        # message to np.zeros(shape, bool), giving int32 with the sign
        # (lava/magma/core/model/py/ports.py line 350); docs/loihi2.md, "Signed neurons"
        k = burst_step(self.v, a + self.bias, self.threshold, int(self.max_spikes.item()), bool(self.signed.item()),
                       self.sent if self.memory.item() else None)
        self.s_out.send(k.astype(np.int32))
