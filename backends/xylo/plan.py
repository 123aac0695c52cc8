"""Where a network goes on Xylo, before anything is quantised: the layer plan
the design rules check (:class:`XyloPlan`), the packing of hidden layers and
bias units into the one hidden population, and the run's timing
(docs/xylo.md, "Packing and timing")."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from adacal import ir
from adacal.backends.xylo.devices import XyloDevice, get_device
from adacal.backends.xylo.network import extract_chain

__all__ = ["HiddenLayerPlan", "XyloPlan", "BiasUnit", "Layout", "Timing", "layout", "timing", "plan_layers",
           "xylo_plan"]


@dataclass(frozen=True)
class HiddenLayerPlan:
    """One hidden layer packed into the hidden population (in order)."""

    name: str
    size: int
    #: the largest number of outgoing synapses of one neuron of this layer
    #: (non-zero weights into the next layer, or into the outputs)
    fanout: int
    max_spikes: Optional[int] = None  # the float network's burst cap φ
    note: str = ""  # e.g. "conv unrolled into dense"
    #: which layer the inputs drive / which drives the outputs (None: the
    #: first / the last layer of the plan)
    receives_input: Optional[bool] = None
    drives_output: Optional[bool] = None
    fanout_note: str = ""  # e.g. "incl. 1 self-reset synapse"


@dataclass(frozen=True)
class XyloPlan:
    """The layer-level shape of a feed-forward network on Xylo: input
    channels -> hidden layers (packed in order into one population, the first
    receiving the input, the last driving the outputs) -> output neurons."""

    n_inputs: int
    hidden: tuple
    n_outputs: int
    input_name: str = "input"
    readout_name: str = "readout"
    #: how the input channels come about (for messages), e.g. "13 features"
    input_note: str = ""
    #: the largest event count the input encoder emits per channel and step
    max_input_events: int = 15
    #: synapses per hidden neuron the lowering uses
    synapses: int = 1

    @property
    def n_hidden(self) -> int:
        return int(sum(layer.size for layer in self.hidden))

    def layer_ranges(self) -> dict:
        """layer name -> (first id, stop id) in the packed population."""
        out, start = {}, 0
        for layer in self.hidden:
            out[layer.name] = (start, start + layer.size)
            start += layer.size
        return out


# ----------------------------------------------------------------------
# packing: hidden layers and the bias pipeline's units
# ----------------------------------------------------------------------
@dataclass(frozen=True)
class BiasUnit:
    """A neuron of the bias pipeline (exact neurons): stage l feeds layer l's
    constant bias current; stage -1 is the timer that ends stage 0."""
    stage: int
    targets: tuple  # (first, stop) of the layer-`stage` neurons it drives (indices within the layer)
    drives: tuple  # indices (within stage + 1) of the next stage's units it drives


@dataclass(frozen=True)
class Layout:
    """Hidden ids: layers 0..L-2 in order, then the bias units (exact
    neurons; stage 0 first), then the last layer (it drives the outputs)."""
    ranges: tuple  # per layer (first, stop)
    bias_first: int
    units: tuple  # BiasUnit, in id order
    n_hidden: int

    @property
    def n_bias(self) -> int:
        return len(self.units)

    def unit_id(self, stage: int, k: int) -> int:
        return self.bias_first + [i for i, u in enumerate(self.units) if u.stage == stage][k]


def _bias_units(sizes, max_fanout: int) -> list:
    """Bias units per stage, built from the last stage back: a stage's units
    drive the layer's neurons and the next stage's units, at most
    max_fanout synapses each (relays, stages >= 1, also have a self synapse)."""
    stages = [None] * len(sizes)
    for l in reversed(range(len(sizes))):  # stage 0's units have no self synapse
        cap = max_fanout - (1 if l > 0 else 0)
        n_next = len(stages[l + 1]) if l + 1 < len(sizes) else 0
        items = [("n", j) for j in range(sizes[l])] + [("u", k) for k in range(n_next)]
        units = []
        for a in range(0, len(items), max(cap, 1)):
            chunk = items[a:a + cap]
            js = [j for kind, j in chunk if kind == "n"]
            units.append(BiasUnit(l, (js[0], js[-1] + 1) if js else (0, 0),
                                  tuple(k for kind, k in chunk if kind == "u")))
        stages[l] = units
    timer = BiasUnit(-1, (0, 0), tuple(range(len(stages[0]))))  # switches stage 0 off after T steps
    return [timer] + [u for st in stages for u in st]


def layout(sizes, neuron: str, max_fanout: int) -> Layout:
    """The hidden ids of layers of the given sizes (and of the bias units,
    for exact neurons)."""
    units = _bias_units(sizes, max_fanout) if neuron == "exact" else []
    ranges, pos = [], 0
    for n in sizes[:-1]:
        ranges.append((pos, pos + n))
        pos += n
    bias_first = pos
    pos += len(units)
    ranges.append((pos, pos + sizes[-1]))
    return Layout(tuple(ranges), bias_first, tuple(units), pos + sizes[-1])


@dataclass(frozen=True)
class Timing:
    """The run: the input occupies steps [delay, delay + T); layer i's events
    of steps [0, windows[i]) still reach the readout; steps in all."""
    delay: int
    steps: int
    windows: tuple


def timing(neuron: str, T: int, drain_steps: int, n_layers: int) -> Timing:
    delay = 1 if neuron == "exact" else 0  # exact: the input starts at step 1, with the bias pipeline
    return Timing(delay, delay + T + drain_steps + n_layers,
                  tuple(delay + T + drain_steps + i for i in range(n_layers)))


# ----------------------------------------------------------------------
# the plan
# ----------------------------------------------------------------------
def xylo_plan(snn: ir.Graph, encoder, device, neuron: str = "exact") -> XyloPlan:
    """The layer-level plan of ``snn`` on Xylo ``device`` (for the DRC);
    ``encoder``: its :class:`~adacal.backends.xylo.encoder.InputEncoder`."""
    layers, readout = extract_chain(snn)
    return plan_layers(snn, layers, readout, encoder, neuron, get_device(device))


def plan_layers(snn, layers, readout, encoder, neuron: str, dev: XyloDevice) -> XyloPlan:
    """The plan of the chain (layers, readout) of ``snn`` from
    :func:`~adacal.backends.xylo.network.extract_chain`."""
    self_syn = 1 if neuron == "exact" else 0  # the self-reset synapse
    hidden = []
    for i, l in enumerate(layers):
        fan = int(l.fanin_nnz.max()) if l.fanin_nnz is not None and l.fanin_nnz.size else 0
        hidden.append(HiddenLayerPlan(l.name, int(l.threshold.size), fan + self_syn, l.max_spikes, l.note,
                                      receives_input=i == 0, drives_output=i == len(layers) - 1,
                                      fanout_note="incl. 1 self-reset synapse" if self_syn else ""))
    lay = layout([l.threshold.size for l in layers], neuron, dev.max_fanout)
    if lay.n_bias:
        fan = max(u.targets[1] - u.targets[0] + len(u.drives) + (u.stage > 0) for u in lay.units)
        hidden.insert(len(layers) - 1, HiddenLayerPlan(
            "bias units", lay.n_bias, fan, None, "the bias-current pipeline: a timer and one stage per layer",
            receives_input=False, drives_output=False))
    modes = encoder.modes
    counts = {m: modes.count(m) for m in ("positive", "split", "offset") if modes.count(m)}
    note = f"{encoder.n_features} features: " + ", ".join(f"{v} {m}" for m, v in counts.items())
    return XyloPlan(encoder.n_channels, tuple(hidden), int(readout.n_classes), input_name=snn.input.name,
                    readout_name=readout.name, input_note=note, max_input_events=encoder.max_count, synapses=1)
