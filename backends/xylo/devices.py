"""The Xylo device table: one :class:`XyloDevice` per chip with every limit a
compiled network must respect (sizes from rockpool 3.1.0, number formats from
xylosim 0.1.3; the table with its sources is in docs/xylo.md).  Pure data."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

__all__ = [
    "XyloDevice",
    "DEVICES",
    "get_device",
    "WEIGHT_RANGE",
    "STATE_RANGE",
    "THRESHOLD_RANGE",
    "DASH_RANGE",
    "WEIGHT_SHIFT_RANGE",
]

# Number formats, the same on every device (xylosim v2 XyloIAFNeuron.h).
WEIGHT_RANGE = (-128, 127)  # int8 XyloSynapse.weight
STATE_RANGE = (-(2 ** 15), 2 ** 15 - 1)  # int16 isyn / vmem / bias
THRESHOLD_RANGE = (1, 2 ** 15 - 1)  # <= 0 would make every step emit the event cap
DASH_RANGE = (0, 15)  # 4-bit bit-shift decay
WEIGHT_SHIFT_RANGE = (0, 8)  # every int8 w << shift still fits int16


@dataclass(frozen=True)
class XyloDevice:
    """Every limit of one Xylo chip that a compiled network must respect."""

    name: str
    chip: str
    n_hidden: int
    n_outputs: int
    synapses_per_neuron: int
    max_fanout: int
    #: inputs reach only hidden neurons with id < input_window (None: all)
    input_window: Optional[int]
    #: only the last output_window hidden neurons drive outputs (None: all)
    output_window: Optional[int]
    n_inputs: int = 16
    weight_range: tuple = WEIGHT_RANGE
    state_range: tuple = STATE_RANGE
    threshold_range: tuple = THRESHOLD_RANGE
    dash_range: tuple = DASH_RANGE
    weight_shift_range: tuple = WEIGHT_SHIFT_RANGE
    max_input_events: int = 15  # per channel per step (xylosim MAX_NUM_INP_SPIKES)
    max_hidden_events: int = 31  # per neuron per step (MAX_NUM_SPIKES)
    max_output_events: int = 1  # per output neuron per step (MAX_NUM_OUT_SPIKES)
    #: the hardware allows one alias target per hidden neuron (XyloSim any number)
    max_alias_targets: int = 1

    def __str__(self) -> str:
        return self.name

    def as_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


DEVICES: dict[str, XyloDevice] = {
    "xylo-audio2": XyloDevice("xylo-audio2", "syns61201", n_hidden=1000, n_outputs=8,
                              synapses_per_neuron=2, max_fanout=64,
                              input_window=None, output_window=None),
    "xylo-audio3": XyloDevice("xylo-audio3", "syns65302", n_hidden=992, n_outputs=32,
                              synapses_per_neuron=2, max_fanout=1024,
                              input_window=128, output_window=128),
    "xylo-imu": XyloDevice("xylo-imu", "syns63300", n_hidden=496, n_outputs=16,
                           synapses_per_neuron=1, max_fanout=512,
                           input_window=128, output_window=128),
}


def get_device(device) -> XyloDevice:
    """A :class:`XyloDevice` from its name (or the device itself)."""
    if isinstance(device, XyloDevice):
        return device
    try:
        return DEVICES[str(device)]
    except KeyError:
        raise ValueError(f"unknown Xylo device {device!r}; expected one of {', '.join(DEVICES)}") from None
