"""MaxPool: a max pool over graded payloads (or currents) as a Lava Process.

Per Lava time step (model in models.py), with the window arithmetic of
adacal.runtime_sim.maxpool (the only place it lives):

    s_out <- Stream.step(s_in)      (same step)

where the realisation `how` is "step" (max of this step's inputs), "gated"
(the input with the largest sum so far passes) or "running" (the step of
the running max of the sums), docs/method.md "Max pooling".  The ports use
Lava's feature-map order (X, Y, Z) = (W, H, C), as lava.proc.conv does; the
geometry is given in PyTorch's (H, W) order, padding (top, left, bottom,
right), as runtime_sim.maxpool.PoolGeometry holds it.

The sums of "gated" / "running" restart at the first step of every
``period``; during the first ``hold`` steps of every period (or of the run,
when period == 0) it sends 0 and discards its input, like BurstIF: see
docs/loihi2.md, "Max pooling".

The Lava import fix (adacal.backends.loihi2.compat.ensure_lava) is applied
before any Lava import: it is idempotent, and Lava's model discovery executes
this file again.
"""
from __future__ import annotations

import typing as ty

from adacal.backends.loihi2.compat import ensure_lava as _ensure_lava
from adacal.runtime_sim.maxpool import REALISATIONS, PoolGeometry

_ensure_lava()

from lava.magma.core.process.ports.ports import InPort, OutPort  # noqa: E402
from lava.magma.core.process.process import AbstractProcess, LogConfig  # noqa: E402
from lava.magma.core.process.variable import Var  # noqa: E402


def _pair(v, what: str) -> tuple[int, int]:
    t = tuple(int(x) for x in (v if hasattr(v, "__len__") else (v, v)))
    if len(t) != 2:
        raise ValueError(f"MaxPool {what} must be two integers (H, W), got {v!r}")
    return t


def _validated(shape, kernel, stride, padding, dilation, ceil_mode, how, hold, period):
    """(shape, out_shape, PoolGeometry) of valid arguments, else ValueError."""
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3:
        raise ValueError(f"MaxPool shape must be (W, H, C), got {shape}")
    if how not in REALISATIONS:
        raise ValueError(f"MaxPool how={how!r}: use one of {', '.join(REALISATIONS)}")
    kernel = _pair(kernel, "kernel")
    stride = kernel if stride is None else _pair(stride, "stride")
    pads = tuple(int(p) for p in padding)
    if len(pads) != 4 or min(pads) < 0 or min(kernel + stride) < 1:
        raise ValueError(f"MaxPool kernel {kernel}, stride {stride}, padding {pads}")
    geo = PoolGeometry(kernel, stride, pads, _pair(dilation, "dilation"), bool(ceil_mode))
    w, h, c = shape
    ho, wo = geo.out_size((h, w))
    if ho < 1 or wo < 1:
        raise ValueError(f"MaxPool: no output for input (H, W) = ({h}, {w}) and {geo}")
    if int(hold) < 0 or int(period) < 0:
        raise ValueError("MaxPool hold and period must be >= 0")
    if period and hold >= period:
        raise ValueError(f"MaxPool hold ({hold}) must be < period ({period})")
    return shape, (wo, ho, c), geo


def _refused(proc) -> None:
    """Lava's AbstractProcess.__del__ calls stop(), which reads _runtime, an
    attribute only AbstractProcess.__init__ sets (lava/magma/core/process/
    process.py: __del__ lines 221-225, stop lines 425-429, _runtime line 219):
    a process refused before that would raise again when it is destroyed."""
    proc._runtime = None


class MaxPool(AbstractProcess):
    """Max pool over a (W, H, C) feature map of graded integers.

    Parameters
    ----------
    shape : (W, H, C), the input (Lava order)
    kernel, stride, dilation : (H, W) pairs (or one int for both)
    padding : (top, left, bottom, right); padded entries never win a max
    ceil_mode : PyTorch's / ONNX's ceil_mode for the output size
    how : "step", "gated" or "running" (runtime_sim.maxpool.REALISATIONS)
    hold : int >= 0, leading steps per period that send 0 (see module doc)
    period : int >= 0, steps per sample when several samples run back to back
        (0 = one sample)
    """

    def __init__(self, *, shape: ty.Tuple[int, int, int], kernel, stride=None, padding=(0, 0, 0, 0),
                 dilation=(1, 1), ceil_mode: bool = False, how: str = "running", hold: int = 0, period: int = 0,
                 name: ty.Optional[str] = None, log_config: ty.Optional[LogConfig] = None) -> None:
        try:
            shape, out_shape, geo = _validated(shape, kernel, stride, padding, dilation, ceil_mode, how, hold, period)
        except ValueError:
            _refused(self)
            raise
        super().__init__(shape=shape, out_shape=out_shape, geometry=geo, how=how, hold=int(hold),
                         period=int(period), name=name, log_config=log_config)
        self.shape, self.out_shape, self.geometry, self.how = shape, out_shape, geo, how
        self.s_in = InPort(shape=shape)
        self.s_out = OutPort(shape=out_shape)
        self.hold = Var(shape=(1,), init=int(hold))
        self.period = Var(shape=(1,), init=int(period))
