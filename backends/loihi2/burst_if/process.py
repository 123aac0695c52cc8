"""BurstIF: adacal's burst integrate-and-fire neuron population as a Lava Process.

Per Lava time step, per neuron (all integers; model in models.py):

    v += a_in + bias
    k  = clamp(floor(v / threshold), lo, max_spikes)    lo = -max_spikes if signed,
                                                         max(-sent, -max_spikes) if memory (sent += k), else 0
    v -= k * threshold
    s_out <- k            (graded payload, same step)

During the first ``hold`` steps of every ``period`` (or of the run, when
period == 0) a neuron is held in reset: v = v_init, it sends 0 and its input
is discarded.  Why (latency, samples back to back): docs/loihi2.md, "The
BurstIF process" and "Timing".

The Lava import fix (adacal.backends.loihi2.compat.ensure_lava) is applied
before any Lava import: it is idempotent, and Lava's model discovery executes
this file again.
"""
from __future__ import annotations

import typing as ty

import numpy as np

from adacal.backends.loihi2.compat import ensure_lava as _ensure_lava

_ensure_lava()

from lava.magma.core.process.ports.ports import InPort, OutPort  # noqa: E402
from lava.magma.core.process.process import AbstractProcess, LogConfig  # noqa: E402
from lava.magma.core.process.variable import Var  # noqa: E402


def _per_neuron(value, shape, what: str) -> np.ndarray:
    a = np.asarray(value)
    if a.dtype.kind not in "iub":
        if not np.all(np.asarray(a, np.float64) == np.round(np.asarray(a, np.float64))):
            raise ValueError(f"BurstIF {what} must be integers")
    a = np.asarray(a, dtype=np.int64)
    try:
        return np.broadcast_to(a, shape).copy()
    except ValueError:
        raise ValueError(f"BurstIF {what} of shape {a.shape} does not broadcast to {shape}") from None


class BurstIF(AbstractProcess):
    """Burst integrate-and-fire neurons sending graded spike counts.

    Parameters
    ----------
    shape : tuple of int
        Shape of the population (and of a_in / s_out).
    threshold : int array broadcastable to shape, > 0
    bias : int array broadcastable to shape (default 0)
    v_init : int array broadcastable to shape (default 0)
    max_spikes : int >= 0, spikes per step cap (per population)
    signed : bool, a signed population: k is clamped to [-max_spikes, max_spikes]
        (a linear, unrectified value), else to [0, max_spikes]
    memory : bool, a memory population: k is clamped to [max(-sent, -max_spikes),
        max_spikes], sent being the neuron's payloads summed since its last reset
        (it takes back spikes it sent, never more)
    hold : int >= 0, leading steps per period held in reset (see module doc)
    period : int >= 0, steps per sample when several samples run back to back
        (0 = one sample: hold only the first ``hold`` steps of the run)
    """

    def __init__(self, *, shape: ty.Tuple[int, ...], threshold, bias=0, v_init=0,
                 max_spikes: int = 1, hold: int = 0, period: int = 0, signed: bool = False, memory: bool = False,
                 name: ty.Optional[str] = None,
                 log_config: ty.Optional[LogConfig] = None) -> None:
        try:
            shape = tuple(int(s) for s in shape)
            threshold = _per_neuron(threshold, shape, "threshold")
            bias = _per_neuron(bias, shape, "bias")
            v_init = _per_neuron(v_init, shape, "v_init")
            if threshold.size and threshold.min() <= 0:
                raise ValueError("BurstIF threshold must be > 0")
            if int(max_spikes) < 0 or int(hold) < 0 or int(period) < 0:
                raise ValueError("BurstIF max_spikes, hold and period must be >= 0")
            if period and hold >= period:
                raise ValueError(f"BurstIF hold ({hold}) must be < period ({period})")
        except ValueError:
            # Lava's AbstractProcess.__del__ calls stop(), which reads _runtime, an
            # attribute only AbstractProcess.__init__ sets (lava/magma/core/process/
            # process.py: __del__ lines 221-225, stop lines 425-429, _runtime line
            # 219): without it a refused process raises again when destroyed
            self._runtime = None
            raise
        super().__init__(shape=shape, max_spikes=int(max_spikes), hold=int(hold),
                         period=int(period), signed=bool(signed), memory=bool(memory), name=name,
                         log_config=log_config)
        self.shape = shape
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.v = Var(shape=shape, init=v_init)
        self.v_init = Var(shape=shape, init=v_init)
        self.threshold = Var(shape=shape, init=threshold)
        self.bias = Var(shape=shape, init=bias)
        self.max_spikes = Var(shape=(1,), init=int(max_spikes))
        self.signed = Var(shape=(1,), init=int(bool(signed)))
        self.memory = Var(shape=(1,), init=int(bool(memory)))
        self.sent = Var(shape=shape, init=0)
        self.hold = Var(shape=(1,), init=int(hold))
        self.period = Var(shape=(1,), init=int(period))
