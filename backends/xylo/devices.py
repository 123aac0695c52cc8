"""Xylo device models and the design-rule check (DRC).

One :class:`XyloDevice` per chip with every limit the compiler must respect
(shared/spec/targets.md, "Xylo through Rockpool / xylosim"; sizes from
rockpool 3.1.0 ``rockpool/devices/xylo/syns61201`` / ``syns65302`` /
``syns63300``, number formats from xylosim 0.1.3 ``XyloIAFNeuron.h``):

==========================  ===========  ===========  ========
                            xylo-audio2  xylo-audio3  xylo-imu
==========================  ===========  ===========  ========
chip                        syns61201    syns65302    syns63300
input channels              16           16           16
hidden neurons              1000         992          496
output neurons              8            32           16
synapses per hidden neuron  2            2            1
max fan-out per hidden      64           1024         512
inputs reach hidden ids     all          < 128        < 128
outputs read hidden ids     all          last 128     last 128
==========================  ===========  ===========  ========

Common to all three: int8 weights, ``weight_shift_in/rec/out`` 0..8 (what
``adacal.runtime_sim.xylo_sim.XyloSpec.validate`` accepts: every int8 ``w <<
shift`` still fits int16), int16 state / bias, threshold 1..32767, dash
(bit-shift decay) 0..15, events per step: input <= 15 per channel, hidden <=
31 per neuron, output <= 1.  Rockpool does not check fan-out (samna would);
this module does.

:func:`design_rule_check` takes either a *plan* (:class:`XyloPlan`: the layer
sizes the compiler is about to place, checked before anything is quantised)
or a finished specification (``XyloSpec`` or a dict of
``XyloSim.from_specification`` keyword arguments), or an object carrying both
(``.plan`` and ``.spec``, e.g. ``adacal.passes.lower_xylo.XyloLowering``),
and returns one readable message per violation, naming the layer, the
quantity and the limit.  An empty list means the network fits.

Pure data + numpy: no vendor import.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

import numpy as np

__all__ = [
    "XyloDevice",
    "DEVICES",
    "get_device",
    "HiddenLayerPlan",
    "XyloPlan",
    "design_rule_check",
]


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
    weight_range: tuple = (-128, 127)  # int8
    state_range: tuple = (-(2 ** 15), 2 ** 15 - 1)  # int16 isyn / vmem / bias
    threshold_range: tuple = (1, 2 ** 15 - 1)
    dash_range: tuple = (0, 15)
    weight_shift_range: tuple = (0, 8)
    max_input_events: int = 15  # per channel per step (xylosim MAX_NUM_INP_SPIKES)
    max_hidden_events: int = 31  # per neuron per step (MAX_NUM_SPIKES)
    max_output_events: int = 1  # per output neuron per step (MAX_NUM_OUT_SPIKES)
    #: the hardware allows one alias target per hidden neuron (targets.md)
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


# ----------------------------------------------------------------------
# plans: what the compiler is about to place
# ----------------------------------------------------------------------
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
# the check
# ----------------------------------------------------------------------
def design_rule_check(obj: Any, device) -> list:
    """Every violation of ``device``'s limits by ``obj``, one message each
    (an empty list: it fits).

    ``obj``: a :class:`XyloPlan`; an ``XyloSpec`` or a dict of
    ``from_specification`` kwargs; or anything with ``.spec`` (and optionally
    ``.plan``) attributes, whose plan then also names the layers in the
    spec's messages.
    """
    dev = get_device(device)
    if isinstance(obj, XyloPlan):
        return _check_plan(obj, dev)
    plan = getattr(obj, "plan", None)
    spec = getattr(obj, "spec", None)
    if spec is not None or plan is not None:
        msgs = _check_plan(plan, dev) if isinstance(plan, XyloPlan) else []
        if spec is not None:
            ranges = plan.layer_ranges() if isinstance(plan, XyloPlan) else None
            for m in _check_spec(spec, dev, ranges):
                if m not in msgs:
                    msgs.append(m)
        return msgs
    return _check_spec(obj, dev, None)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _check_plan(plan: XyloPlan, dev: XyloDevice) -> list:
    msgs = []
    d = dev.name
    note = f" ({plan.input_note})" if plan.input_note else ""
    if plan.n_inputs > dev.n_inputs:
        msgs.append(f"input '{plan.input_name}': {plan.n_inputs} input channels{note} exceed "
                    f"{d}'s {dev.n_inputs}")
    if plan.max_input_events > dev.max_input_events:
        msgs.append(f"input '{plan.input_name}': the encoder emits up to {plan.max_input_events} events "
                    f"per channel and step, {d} takes at most {dev.max_input_events}")
    if not plan.hidden:
        msgs.append(f"network: no hidden layer; {d} needs at least one hidden neuron between "
                    f"inputs and outputs")
    total = plan.n_hidden
    if total > dev.n_hidden:
        running, culprit = 0, plan.hidden[-1].name
        for layer in plan.hidden:
            running += layer.size
            if running > dev.n_hidden:
                culprit = layer.name
                break
        parts = " + ".join(f"'{layer.name}' {layer.size}" for layer in plan.hidden)
        msgs.append(f"layer '{culprit}': {total} hidden neurons in total ({parts}) exceed "
                    f"{d}'s {dev.n_hidden}")
    if plan.n_outputs > dev.n_outputs:
        msgs.append(f"readout '{plan.readout_name}': {plan.n_outputs} output neurons exceed "
                    f"{d}'s {dev.n_outputs}")
    if plan.synapses > dev.synapses_per_neuron:
        msgs.append(f"network: uses {plan.synapses} synapses per hidden neuron, {d} has "
                    f"{dev.synapses_per_neuron}")
    for layer in plan.hidden:
        extra = f" ({layer.note})" if layer.note else ""
        if layer.fanout > dev.max_fanout:
            fn = f", {layer.fanout_note}" if layer.fanout_note else ""
            msgs.append(f"layer '{layer.name}'{extra}: a neuron drives {layer.fanout} synapses (fan-out{fn}), "
                        f"{d} allows at most {dev.max_fanout} per hidden neuron")
        if layer.max_spikes is not None and layer.max_spikes > dev.max_hidden_events:
            msgs.append(f"layer '{layer.name}': burst cap max_spikes={layer.max_spikes} exceeds "
                        f"{d}'s {dev.max_hidden_events} events per hidden neuron and step")
    if plan.hidden:
        ranges = plan.layer_ranges()
        first = next((layer for layer in plan.hidden if layer.receives_input), plan.hidden[0])
        last = next((layer for layer in plan.hidden if layer.drives_output), plan.hidden[-1])
        a, b = ranges[first.name]
        if dev.input_window is not None and b > dev.input_window:
            at = f" at hidden ids {a}..{b - 1}" if a else ""
            msgs.append(f"layer '{first.name}': receives the input with {first.size} neurons{at}, but on {d} "
                        f"inputs reach only the first {dev.input_window} hidden neurons (input window)")
        a, b = ranges[last.name]
        if dev.output_window is not None and a < total - dev.output_window:
            at = f" at hidden ids {a}..{b - 1} of {total}" if b != total else ""
            msgs.append(f"layer '{last.name}': drives the outputs with {last.size} neurons{at}, but on {d} "
                        f"only the last {dev.output_window} hidden neurons reach the outputs (output window)")
    return msgs


# ---- specifications ---------------------------------------------------
_SPEC_FIELDS = ("weights_in", "weights_out", "weights_rec", "dash_mem", "dash_mem_out",
                "dash_syn", "dash_syn_2", "dash_syn_out", "threshold", "threshold_out",
                "bias", "bias_out")


def _spec_arrays(spec) -> dict:
    if isinstance(spec, Mapping):
        get = spec.get
    else:
        get = lambda k, default=None: getattr(spec, k, default)  # noqa: E731
    out = {}
    for k in _SPEC_FIELDS:
        v = get(k, None)
        out[k] = None if v is None else np.asarray(v)
    for k in ("weight_shift_in", "weight_shift_rec", "weight_shift_out"):
        out[k] = get(k, None)
    out["aliases"] = get("aliases", None)
    return out


def _who(i: int, ranges: Optional[dict]) -> str:
    """'layer 'x' (hidden neuron 12)' for hidden id i."""
    if ranges:
        for name, (a, b) in ranges.items():
            if a <= i < b:
                return f"layer '{name}' (hidden neuron {i})"
    return f"hidden neuron {i}"


def _check_spec(spec, dev: XyloDevice, ranges: Optional[dict]) -> list:
    msgs = []
    d = dev.name
    a = _spec_arrays(spec)
    missing = [k for k in _SPEC_FIELDS if a[k] is None]
    if missing:
        return [f"specification: missing {', '.join(missing)} (pass every from_specification field)"]
    w_in, w_rec, w_out = a["weights_in"], a["weights_rec"], a["weights_out"]
    if w_in.ndim == 2:
        w_in = w_in[:, :, None]
    if w_rec.ndim == 2:
        w_rec = w_rec[:, :, None]
    if w_in.ndim != 3 or w_rec.ndim != 3 or w_out.ndim != 2 or w_rec.shape[0] != w_rec.shape[1]:
        return [f"specification: malformed weight shapes weights_in {a['weights_in'].shape}, "
                f"weights_rec {a['weights_rec'].shape}, weights_out {w_out.shape}"]
    n_in, h, n_out = w_in.shape[0], w_rec.shape[0], w_out.shape[1]

    # number formats
    lo, hi = dev.weight_range
    for name, w in (("weights_in", w_in), ("weights_rec", w_rec), ("weights_out", w_out)):
        if w.size and (w.min() < lo or w.max() > hi or np.any(w != np.round(w))):
            bad = w.min() if w.min() < lo else w.max()
            msgs.append(f"{name}: value {bad:g} outside int8 weights {lo}..{hi} on {d}")
    for name in ("threshold", "threshold_out"):
        t = a[name]
        tl, th = dev.threshold_range
        if t.size and (t.min() < tl or t.max() > th):
            bad = int(t.min() if t.min() < tl else t.max())
            where = _who(int(np.argmin(t) if t.min() < tl else np.argmax(t)), ranges) \
                if name == "threshold" else f"output {int(np.argmin(t) if t.min() < tl else np.argmax(t))}"
            msgs.append(f"{name}: {where} has threshold {bad}, {d} allows {tl}..{th}")
    sl, sh = dev.state_range
    for name in ("bias", "bias_out"):
        b = a[name]
        if b.size and (b.min() < sl or b.max() > sh):
            bad = int(b.min() if b.min() < sl else b.max())
            msgs.append(f"{name}: value {bad} outside the int16 range {sl}..{sh} on {d}")
    dl, dh = dev.dash_range
    for name in ("dash_mem", "dash_mem_out", "dash_syn", "dash_syn_2", "dash_syn_out"):
        x = a[name]
        if x.size and (x.min() < dl or x.max() > dh):
            bad = int(x.min() if x.min() < dl else x.max())
            msgs.append(f"{name}: dash {bad} outside {dl}..{dh} on {d}")
    wl, wh = dev.weight_shift_range
    for name in ("weight_shift_in", "weight_shift_rec", "weight_shift_out"):
        v = a[name]
        if v is None:
            msgs.append(f"{name}: missing")
        elif not wl <= int(v) <= wh:
            msgs.append(f"{name}: {int(v)} outside {wl}..{wh} (int8 << shift must fit int16) on {d}")

    # sizes
    if n_in > dev.n_inputs:
        msgs.append(f"input: {n_in} input channels exceed {d}'s {dev.n_inputs}")
    if h > dev.n_hidden:
        msgs.append(f"hidden population: {h} hidden neurons in total exceed {d}'s {dev.n_hidden}")
    if n_out > dev.n_outputs:
        msgs.append(f"readout: {n_out} output neurons exceed {d}'s {dev.n_outputs}")
    if w_in.shape[1] > h or w_out.shape[0] > h:
        msgs.append(f"specification: weights_in reaches {w_in.shape[1]} / weights_out reads {w_out.shape[0]} "
                    f"hidden neurons, but there are only {h}")
        return msgs

    # synapses per hidden neuron
    ns = dev.synapses_per_neuron
    for name, w in (("weights_in", w_in), ("weights_rec", w_rec)):
        if w.shape[2] > ns and np.any(w[:, :, ns:] != 0):
            tgt = int(np.nonzero(np.any(w[:, :, ns:] != 0, axis=(0, 2)))[0][0])
            msgs.append(f"{name}: {_who(tgt, ranges)} uses synapse {ns + 1}, {d} has "
                        f"{_plural(ns, 'synapse')} per hidden neuron")

    # fan-out per hidden neuron: outgoing recurrent synapses + output synapses
    w_out_full = np.zeros((h, n_out), w_out.dtype)
    w_out_full[h - w_out.shape[0]:] = w_out
    fan = np.count_nonzero(w_rec, axis=(1, 2)) + np.count_nonzero(w_out_full, axis=1)
    if fan.size and fan.max() > dev.max_fanout:
        i = int(np.argmax(fan))
        n_bad = int(np.sum(fan > dev.max_fanout))
        msgs.append(f"fan-out: {_who(i, ranges)} drives {int(fan[i])} synapses "
                    f"({n_bad} neuron(s) above the limit), {d} allows at most {dev.max_fanout} per hidden neuron")

    # input / output windows
    if dev.input_window is not None and w_in.shape[1] > dev.input_window:
        reach = np.any(w_in[:, dev.input_window:] != 0, axis=(0, 2))
        if reach.any():
            i = dev.input_window + int(np.nonzero(reach)[0][-1])
            msgs.append(f"input window: inputs reach {_who(i, ranges)}, but on {d} inputs reach only "
                        f"the first {dev.input_window} hidden neurons")
    if dev.output_window is not None and h > dev.output_window:
        src = np.any(w_out_full[: h - dev.output_window] != 0, axis=1)
        if src.any():
            i = int(np.nonzero(src)[0][0])
            msgs.append(f"output window: {_who(i, ranges)} drives an output, but on {d} only the last "
                        f"{dev.output_window} hidden neurons (ids >= {h - dev.output_window}) reach the outputs")

    # aliases
    al = a["aliases"]
    if al is not None:
        for i, row in enumerate(al):
            if len(row) > dev.max_alias_targets:
                msgs.append(f"aliases: {_who(i, ranges)} has {len(row)} alias targets, {d} allows "
                            f"{dev.max_alias_targets}")
                break
    return msgs
