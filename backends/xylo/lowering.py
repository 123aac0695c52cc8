"""A network lowered for one Xylo device: the validated XyloSpec, its input
encoder, where each layer sits and what its integers mean, and the readout
rule (docs/xylo.md)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from adacal.backends.xylo.encoder import InputEncoder
from adacal.backends.xylo.plan import XyloPlan
from adacal.backends.xylo.spec import XyloSpec
from adacal.runtime_sim import xylo_sim

__all__ = ["XyloLayer", "XyloReadout", "XyloLowering"]


@dataclass(frozen=True)
class XyloLayer:
    """Where a hidden layer sits and what its integers mean."""
    name: str
    first: int  # hidden ids first..stop-1
    stop: int
    event_value: np.ndarray  # (n,) float value of one event (theta / event_gain)
    threshold: np.ndarray  # (n,) int Theta
    weight_shift: int  # of the matrix feeding this layer (in or rec)
    window: int  # events of steps [0, window) reach the readout
    note: str = ""

    @property
    def size(self) -> int:
        return self.stop - self.first


@dataclass(frozen=True)
class XyloReadout:
    """How the class is read (docs/xylo.md, "Readout")."""
    name: str
    n_classes: int
    gain: float  # G: Vmem LSB per float unit of the T-step summed readout
    weight_shift: int
    mode: str = "isyn"  # "isyn": Vmem = isyn + bias_out; "vmem": the membrane integrates
    output_mode: str = "Vmem"  # XyloSim / hardware output_mode to read
    rule: str = "argmax over output neurons of Vmem_out after the last step"


@dataclass(frozen=True, eq=False)
class XyloLowering:
    """A network compiled for one Xylo device (docs/xylo.md)."""
    device: str
    spec: XyloSpec
    encoder: InputEncoder
    timesteps: int  # input steps T
    steps: int  # run length T + drain_steps + L
    layers: tuple
    readout: XyloReadout
    plan: Optional[XyloPlan]  # None when loaded from an artifact
    event_gain: int = 1
    calibration: dict = field(default_factory=dict)
    neuron: str = "exact"  # "exact" or "leaky" hidden neurons
    bias_neurons: tuple = ()  # hidden ids of the bias units (exact neurons)
    drain_steps: int = 0
    input_delay: int = 0  # the input occupies steps [input_delay, input_delay + T)

    def encode(self, x) -> np.ndarray:
        """(N, steps, channels) input event counts for x (N, *input_shape)."""
        return self.encoder.encode(x, self.timesteps, self.steps, self.input_delay)

    def run(self, x, **kw) -> xylo_sim.XyloResult:
        """Bit-exact Xylo run (adacal's simulator) on x (N, *input_shape)."""
        return xylo_sim.simulate(self.spec, self.encode(x), **kw)

    def scores(self, result: xylo_sim.XyloResult) -> np.ndarray:
        """(N, K) final output Vmem / (G T): an estimate of the mean logits."""
        return result.vmem_out[:, -1, :].astype(np.float64) / (self.readout.gain * self.timesteps)

    def predict_result(self, result: xylo_sim.XyloResult) -> np.ndarray:
        """The readout rule: argmax of the output Vmem after the last step."""
        return np.argmax(result.vmem_out[:, -1, :], axis=1)

    def predict_steps(self, result: xylo_sim.XyloResult) -> np.ndarray:
        """(T, N) argmax of the output Vmem after each of the last T steps (the
        last row is the readout rule): how the prediction forms over time."""
        return np.argmax(result.vmem_out[:, self.steps - self.timesteps:, :], axis=2).T

    def predict(self, x) -> np.ndarray:
        """Class labels for x (N, *input_shape), bit-exact Xylo."""
        return self.predict_result(self.run(x, record_isyn=False))

    def summary(self) -> dict:
        """A JSON-friendly description (encoder, layer placement, scales)."""
        return {"device": self.device, "neuron": self.neuron, "timesteps": self.timesteps,
                "steps": self.steps, "input_delay": self.input_delay, "drain_steps": self.drain_steps,
                "event_gain": self.event_gain, "encoder": self.encoder.as_dict(),
                "bias_units": list(self.bias_neurons),
                "layers": [{"name": l.name, "hidden_ids": [l.first, l.stop], "weight_shift": l.weight_shift,
                            "threshold_min": int(l.threshold.min()), "threshold_max": int(l.threshold.max()),
                            "window": l.window, "note": l.note} for l in self.layers],
                "readout": self.readout.__dict__.copy(),
                "weight_shift": {"in": self.spec.weight_shift_in, "rec": self.spec.weight_shift_rec,
                                 "out": self.spec.weight_shift_out}}
