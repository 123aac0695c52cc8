"""Bit-accurate CPU model ('fixed_pt') of BurstIF (process.py).

Conventions follow Lava's own fixed-point models (lava-nc 0.10.0, paths
relative to site-packages/lava/):
  * LoihiProtocol, one run_spk per time step, self.time_step counting from 1
    (magma/core/model/py/model.py lines 287, 385; magma/core/sync/protocols/
    loihi_protocol.py); a neuron receives and sends in the same step, like
    proc/lif/models.py and proc/graded/models.py (GradedReluVec, lines 55-77);
  * ports carry np.int32 (as PyDenseModelBitAcc's a_out, proc/dense/models.py
    line 64, and the RingBuffer fixed_pt models, proc/io/source.py line 60,
    proc/io/sink.py line 69); an InPort with several OutPorts connected sums
    them (magma/core/model/py/ports.py PyInPortVectorDense.recv, lines
    333-351) -- that is how synaptic currents are added;
  * graded payloads: downstream Dense/Conv use the full integer value when
    num_message_bits > 0 (proc/dense/models.py line 97, proc/conv/models.py
    line 40).

The neuron state is kept in int64 (no wrap for any realistic run); the payload
k <= max_spikes is sent as int32.  Division is numpy floor_divide (floor, also
for negative v), exactly the integer model:
    v += a_in + bias; k = clip(v // threshold, 0, max_spikes); v -= k * threshold
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
    hold: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=32)
    period: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=32)

    def run_spk(self) -> None:
        a = self.a_in.recv().astype(np.int64)  # always consume the input
        period = int(self.period.item())
        local = self.time_step if period == 0 else (self.time_step - 1) % period + 1
        if local <= int(self.hold.item()):
            # held in reset: the input has not arrived yet (or belongs to the
            # previous sample); see process.py
            self.v[...] = self.v_init
            self.s_out.send(np.zeros(self.v.shape, np.int32))
            return
        v = self.v + a + self.bias
        k = np.clip(np.floor_divide(v, self.threshold), 0, int(self.max_spikes.item()))
        v -= k * self.threshold
        self.v[...] = v
        self.s_out.send(k.astype(np.int32))
