"""A Xylo network specification: exactly the keyword arguments of Rockpool's
``XyloSim.from_specification`` (rockpool 3.1.0,
rockpool/devices/xylo/syns61201/xylo_sim.py), normalised and checked once,
when it is built (the rules: backends/xylo/rules.py)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

import numpy as np

from adacal.backends.xylo.rules import ARRAY_FIELDS, SHIFT_FIELDS, device_problems, spec_problems
from adacal.runtime_sim.xylo_sim import SpecSizes

__all__ = ["XyloSpec"]

_DTYPES = {"weights_in": np.int8, "weights_rec": np.int8, "weights_out": np.int8,
           "threshold": np.int16, "threshold_out": np.int16,
           "bias": np.int16, "bias_out": np.int16}  # the rest (dash) uint8


def _readonly(arr: np.ndarray) -> np.ndarray:
    arr = np.ascontiguousarray(arr)
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class XyloSpec(SpecSizes):
    """A Xylo network specification: exactly the keyword arguments of
    ``XyloSim.from_specification`` (rockpool 3.1.0), normalised and checked.

    Construction converts every field (ValueError naming the field and the
    limit on a bad shape or value: int8 weights, thresholds 1..32767, int16
    biases, dash 0..15, weight shifts 0..8, alias targets) and stores
    read-only arrays:

    ===============  =================================  ======
    field            shape                              dtype
    ===============  =================================  ======
    weights_in       (Nin, IEN, S_in), IEN <= Nhid      int8
    weights_rec      (Nhid, Nhid, S_rec)                int8
    weights_out      (OEN, Nout), OEN <= Nhid           int8
    dash_mem         (Nhid,)                            uint8
    dash_syn(_2)     (Nhid,)                            uint8
    dash_mem_out     (Nout,)                            uint8
    dash_syn_out     (Nout,)                            uint8
    threshold        (Nhid,)                            int16
    threshold_out    (Nout,)                            int16
    bias             (Nhid,)                            int16
    bias_out         (Nout,)                            int16
    weight_shift_*   -                                  int
    aliases          None or tuple of Nhid tuples       int
    ===============  =================================  ======

    ``S`` (synapses) is 1 or 2; a 2-D ``weights_in`` / ``weights_rec`` becomes
    ``(..., 1)``, which is what ``from_specification`` does itself.  IEN and
    OEN are kept as given: XyloSim connects input column ``j`` to hidden
    neuron ``j`` and weights_out row ``k`` to hidden neuron ``Nhid - OEN + k``.
    (Rockpool's ``config_from_specification`` for the hardware wants
    ``weights_out`` with all ``Nhid`` rows; :meth:`padded_weights_out` gives
    that.)  ``weights_rec`` is required (XyloSim's default is zeros).
    """

    weights_in: np.ndarray
    weights_out: np.ndarray
    weights_rec: np.ndarray
    dash_mem: np.ndarray
    dash_mem_out: np.ndarray
    dash_syn: np.ndarray
    dash_syn_2: np.ndarray
    dash_syn_out: np.ndarray
    threshold: np.ndarray
    threshold_out: np.ndarray
    bias: np.ndarray
    bias_out: np.ndarray
    weight_shift_in: int
    weight_shift_rec: int
    weight_shift_out: int
    aliases: Optional[tuple] = None
    dt: float = 1e-3
    output_mode: str = "Spike"

    def __post_init__(self):
        raw = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        fields, problems = spec_problems(raw)
        if problems:
            raise ValueError(problems[0])
        for name, value in fields.items():
            if name in ARRAY_FIELDS:
                value = _readonly(value.astype(_DTYPES.get(name, np.uint8)))
            object.__setattr__(self, name, value)

    def validate(self, device: Optional[str] = None) -> "XyloSpec":
        """Returns self.  The shapes and number formats were checked when the
        spec was built; with ``device`` ("xylo-audio2", "xylo-audio3",
        "xylo-imu") this also checks that device's limits (sizes, synapses,
        fan-out, input / output windows, alias targets) and raises ValueError
        naming every violation."""
        if device is not None:
            problems = device_problems(self, device)
            if problems:
                raise ValueError("; ".join(problems))
        return self

    def as_kwargs(self) -> dict:
        """The exact keyword arguments for ``XyloSim.from_specification``
        (fresh writable copies; aliases as lists of lists or None)."""
        kw = {name: np.array(getattr(self, name)) for name in ARRAY_FIELDS}
        for name in SHIFT_FIELDS:
            kw[name] = int(getattr(self, name))
        kw["aliases"] = None if self.aliases is None else [list(r) for r in self.aliases]
        kw["dt"] = float(self.dt)
        kw["output_mode"] = self.output_mode
        return kw

    def replace(self, **changes) -> "XyloSpec":
        """A copy with some fields changed (re-validated)."""
        return dataclasses.replace(self, **changes)
