"""The Xylo design rules, written once: a specification's number formats and
shapes (``spec_problems``, enforced by XyloSpec), a device's limits on a
specification (``device_problems``) and on a layer plan (``plan_problems``),
``design_rule_check`` for any of them and ``check_network`` for a converted
SNN before lowering.  One message per violation, naming the field or layer,
the quantity and the limit; an empty list: it fits (docs/xylo.md, "Design
rules")."""
from __future__ import annotations

from typing import Any, Mapping, Optional

import numpy as np

from adacal.backends.xylo.devices import (
    DASH_RANGE,
    STATE_RANGE,
    THRESHOLD_RANGE,
    WEIGHT_RANGE,
    WEIGHT_SHIFT_RANGE,
    XyloDevice,
    get_device,
)
from adacal.backends.xylo.encoder import fit_encoder
from adacal.backends.xylo.plan import XyloPlan, xylo_plan

__all__ = [
    "ARRAY_FIELDS",
    "SHIFT_FIELDS",
    "OUTPUT_MODES",
    "spec_problems",
    "device_problems",
    "plan_problems",
    "design_rule_check",
    "check_network",
]

#: the array arguments of XyloSim.from_specification, in checking order
ARRAY_FIELDS = (
    "weights_in", "weights_out", "weights_rec", "dash_mem", "dash_mem_out",
    "dash_syn", "dash_syn_2", "dash_syn_out", "threshold", "threshold_out",
    "bias", "bias_out",
)
SHIFT_FIELDS = ("weight_shift_in", "weight_shift_rec", "weight_shift_out")
OUTPUT_MODES = ("Spike", "Vmem", "Isyn")
#: from_specification's defaults for the fields that have a usable one
DEFAULTS = {"aliases": None, "dt": 1e-3, "output_mode": "Spike"}
ALL_FIELDS = ARRAY_FIELDS + SHIFT_FIELDS + tuple(DEFAULTS)


# ----------------------------------------------------------------------
# specifications: parsing, shapes and number formats
# ----------------------------------------------------------------------
def _int_array(name: str, value: Any) -> np.ndarray:
    """``value`` as an int64 array; ValueError if it is not integer-valued."""
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists etc.
        raise ValueError(f"{name}: not an array ({exc})") from None
    if arr.dtype == bool:
        return arr.astype(np.int64)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ValueError(f"{name}: values must be integers (found non-integer floats)")
        return arr.astype(np.int64)
    raise ValueError(f"{name}: expected an integer array, got dtype {arr.dtype}")


def _parse_arrays(raw: Mapping, out: dict) -> list:
    """The array arguments as int64 arrays into out (weights 3-D)."""
    problems = []
    for name in ARRAY_FIELDS:
        value = raw.get(name)
        if value is None:
            problems.append(f"{name}: required (XyloSim's defaults are not usable; pass every field)")
            continue
        try:
            out[name] = _int_array(name, value)
        except ValueError as e:
            problems.append(str(e))
    if problems:
        return problems
    for name in ("weights_in", "weights_rec"):
        w = out[name]
        if w.ndim == 2:  # what from_specification does itself
            w = w[:, :, None]
        if w.ndim != 3 or w.shape[2] not in (1, 2):
            problems.append(f"{name}: expected shape (pre, post) or (pre, post, 1|2), got {w.shape}")
        out[name] = w
    if out["weights_out"].ndim != 2:
        problems.append(f"weights_out: expected shape (OEN, Nout), got {out['weights_out'].shape}")
    return problems


def _parse_scalars(raw: Mapping, out: dict) -> list:
    """Shifts as ints, aliases as tuples, dt as a float, into out."""
    problems = []
    for name in SHIFT_FIELDS:
        value = raw.get(name)
        v = np.asarray(value)
        if v.ndim != 0 or v.dtype.kind not in "iub" and not (
            v.dtype.kind == "f" and float(v) == round(float(v))
        ):
            problems.append(f"{name}: expected an integer, got {value!r}")
        else:
            out[name] = int(v)
    aliases = raw.get("aliases", DEFAULTS["aliases"])
    out["aliases"] = None
    if aliases is not None:
        try:
            out["aliases"] = tuple(tuple(int(a) for a in row) for row in aliases)
        except (TypeError, ValueError):
            problems.append("aliases: expected a list of Nhid lists of neuron ids")
        else:
            if any(float(a) != int(a) for orig in aliases for a in orig):
                problems.append("aliases: neuron ids must be integers")
    dt = raw.get("dt", DEFAULTS["dt"])
    try:
        out["dt"] = float(dt)
    except (TypeError, ValueError):
        problems.append(f"dt: expected a number, got {dt!r}")
    out["output_mode"] = str(raw.get("output_mode", DEFAULTS["output_mode"]))
    return problems


def _structure_problems(f: Mapping) -> list:
    """Sizes and the shapes that tie the weight matrices together."""
    n_in, ien, _ = f["weights_in"].shape
    h = f["weights_rec"].shape[0]
    oen, n_out = f["weights_out"].shape
    problems = []
    if f["weights_rec"].shape[:2] != (h, h):
        problems.append(f"weights_rec: expected (Nhid, Nhid, S), got {f['weights_rec'].shape}")
    if h < 1 or n_out < 1 or n_in < 1:
        problems.append(f"network sizes must be >= 1 (Nin={n_in}, Nhid={h}, Nout={n_out})")
    if ien > h:
        problems.append(f"weights_in: {ien} target neurons > Nhid = {h} (IEN <= RSN)")
    if oen > h:
        problems.append(f"weights_out: {oen} source neurons > Nhid = {h} (OEN <= RSN)")
    return problems


def _range_problem(name: str, arr: np.ndarray, lo: int, hi: int, what: str) -> list:
    if arr.size == 0:
        return []
    mn, mx = int(arr.min()), int(arr.max())
    if mn < lo or mx > hi:
        bad = mn if mn < lo else mx
        return [f"{name}: value {bad} outside {what} {lo}..{hi}"]
    return []


def _format_problems(f: Mapping) -> list:
    """Number formats (the same on every device) and per-neuron shapes."""
    h, n_out = f["weights_rec"].shape[0], f["weights_out"].shape[1]
    problems = []
    for name in ("weights_in", "weights_rec", "weights_out"):
        problems += _range_problem(name, f[name], *WEIGHT_RANGE, "int8")
    for name, n in (("dash_mem", h), ("dash_syn", h), ("dash_syn_2", h), ("threshold", h), ("bias", h),
                    ("dash_mem_out", n_out), ("dash_syn_out", n_out), ("threshold_out", n_out),
                    ("bias_out", n_out)):
        if f[name].shape != (n,):
            problems.append(f"{name}: expected shape ({n},), got {f[name].shape}")
    for name in ("dash_mem", "dash_syn", "dash_syn_2", "dash_mem_out", "dash_syn_out"):
        problems += _range_problem(name, f[name], *DASH_RANGE, "dash")
    for name in ("threshold", "threshold_out"):
        problems += _range_problem(name, f[name], *THRESHOLD_RANGE, "threshold")
    for name in ("bias", "bias_out"):
        problems += _range_problem(name, f[name], *STATE_RANGE, "int16")
    lo, hi = WEIGHT_SHIFT_RANGE
    problems += [f"{name}: {f[name]} outside weight shift range {lo}..{hi}"
                 for name in SHIFT_FIELDS if not lo <= f[name] <= hi]
    return problems


def _other_problems(f: Mapping) -> list:
    """Alias targets, dt and output_mode."""
    h = f["weights_rec"].shape[0]
    problems = []
    if f["aliases"] is not None:
        if len(f["aliases"]) != h:
            problems.append(f"aliases: expected {h} lists (one per hidden neuron), got {len(f['aliases'])}")
        else:
            problems += [f"aliases[{i}]: target {a} outside 0..{h - 1}"
                         for i, row in enumerate(f["aliases"]) for a in row if not 0 <= a < h]
    if not (f["dt"] > 0 and np.isfinite(f["dt"])):
        problems.append(f"dt: must be > 0, got {f['dt']}")
    if f["output_mode"] not in OUTPUT_MODES:
        problems.append(f"output_mode: {f['output_mode']!r} not one of {OUTPUT_MODES}")
    return problems


def spec_problems(raw: Mapping) -> tuple[Optional[dict], list]:
    """Parse ``XyloSim.from_specification`` keyword arguments and check their
    shapes and number formats (the limits common to every device: int8
    weights, thresholds 1..32767, int16 biases, dash 0..15, weight shifts
    0..8, alias targets, dt, output_mode).

    Returns (fields, problems): ``fields`` normalised (int64 arrays, 3-D
    ``weights_in`` / ``weights_rec``, int shifts, aliases as tuples), None when
    the arguments cannot be read far enough to check the device's limits;
    ``problems`` in a fixed order (XyloSpec reports the first).
    """
    f: dict = {}
    problems = _parse_arrays(raw, f)
    if problems:
        return None, problems
    problems = _parse_scalars(raw, f)
    if problems:
        return None, problems
    problems = _structure_problems(f)
    if problems:
        return None, problems
    return f, _format_problems(f) + _other_problems(f)


def _raw_fields(spec) -> dict:
    """The from_specification arguments of a mapping or of an object with
    those attributes (missing ones: None or from_specification's default)."""
    if isinstance(spec, Mapping):
        return {k: spec.get(k, DEFAULTS.get(k)) for k in ALL_FIELDS}
    return {k: getattr(spec, k, DEFAULTS.get(k)) for k in ALL_FIELDS}


# ----------------------------------------------------------------------
# a device's limits on a specification
# ----------------------------------------------------------------------
def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _who(i: int, ranges: Optional[dict]) -> str:
    """'layer 'x' (hidden neuron 12)' for hidden id i."""
    if ranges:
        for name, (a, b) in ranges.items():
            if a <= i < b:
                return f"layer '{name}' (hidden neuron {i})"
    return f"hidden neuron {i}"


def _size_problems(w_in, w_rec, w_out, dev: XyloDevice, ranges) -> list:
    d, msgs = dev.name, []
    n_in, h, n_out = w_in.shape[0], w_rec.shape[0], w_out.shape[1]
    if n_in > dev.n_inputs:
        msgs.append(f"input: {n_in} input channels exceed {d}'s {dev.n_inputs}")
    if h > dev.n_hidden:
        msgs.append(f"hidden population: {h} hidden neurons in total exceed {d}'s {dev.n_hidden}")
    if n_out > dev.n_outputs:
        msgs.append(f"readout: {n_out} output neurons exceed {d}'s {dev.n_outputs}")
    ns = dev.synapses_per_neuron
    for name, w in (("weights_in", w_in), ("weights_rec", w_rec)):
        if w.shape[2] > ns and np.any(w[:, :, ns:] != 0):
            tgt = int(np.nonzero(np.any(w[:, :, ns:] != 0, axis=(0, 2)))[0][0])
            msgs.append(f"{name}: {_who(tgt, ranges)} uses synapse {ns + 1}, {d} has "
                        f"{_plural(ns, 'synapse')} per hidden neuron")
    return msgs


def _fanout_problems(w_rec, w_out_full, dev: XyloDevice, ranges) -> list:
    """Outgoing synapses per hidden neuron: recurrent ones + output ones."""
    fan = np.count_nonzero(w_rec, axis=(1, 2)) + np.count_nonzero(w_out_full, axis=1)
    if not (fan.size and fan.max() > dev.max_fanout):
        return []
    i = int(np.argmax(fan))
    n_bad = int(np.sum(fan > dev.max_fanout))
    return [f"fan-out: {_who(i, ranges)} drives {int(fan[i])} synapses ({n_bad} neuron(s) above the limit), "
            f"{dev.name} allows at most {dev.max_fanout} per hidden neuron"]


def _window_problems(w_in, w_out_full, dev: XyloDevice, ranges) -> list:
    d, msgs, h = dev.name, [], w_out_full.shape[0]
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
    return msgs


def device_problems(spec, device, ranges: Optional[dict] = None) -> list:
    """Every violation of ``device``'s limits by a specification whose shapes
    and formats are valid (an XyloSpec, or the fields of
    :func:`spec_problems`): sizes, synapses per neuron, fan-out, input /
    output windows, alias targets.  ``ranges`` (layer name -> (first, stop)
    hidden ids) names the layers in the messages."""
    dev = get_device(device)
    get = spec.get if isinstance(spec, Mapping) else lambda k: getattr(spec, k)
    w_in, w_rec, w_out = get("weights_in"), get("weights_rec"), get("weights_out")
    h = w_rec.shape[0]
    w_out_full = np.zeros((h, w_out.shape[1]), w_out.dtype)  # XyloSim: row k is hidden neuron h - OEN + k
    w_out_full[h - w_out.shape[0]:] = w_out
    msgs = (_size_problems(w_in, w_rec, w_out, dev, ranges) + _fanout_problems(w_rec, w_out_full, dev, ranges)
            + _window_problems(w_in, w_out_full, dev, ranges))
    for i, row in enumerate(get("aliases") or ()):
        if len(row) > dev.max_alias_targets:
            msgs.append(f"aliases: {_who(i, ranges)} has {len(row)} alias targets, {dev.name} allows "
                        f"{dev.max_alias_targets}")
            break
    return msgs


# ----------------------------------------------------------------------
# a device's limits on a plan
# ----------------------------------------------------------------------
def _plan_io_problems(plan: XyloPlan, dev: XyloDevice) -> list:
    d, msgs = dev.name, []
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
    return msgs


def _plan_layer_problems(plan: XyloPlan, dev: XyloDevice) -> list:
    d, msgs = dev.name, []
    for layer in plan.hidden:
        extra = f" ({layer.note})" if layer.note else ""
        if layer.fanout > dev.max_fanout:
            fn = f", {layer.fanout_note}" if layer.fanout_note else ""
            msgs.append(f"layer '{layer.name}'{extra}: a neuron drives {layer.fanout} synapses (fan-out{fn}), "
                        f"{d} allows at most {dev.max_fanout} per hidden neuron")
        if layer.max_spikes is not None and layer.max_spikes > dev.max_hidden_events:
            msgs.append(f"layer '{layer.name}': burst cap max_spikes={layer.max_spikes} exceeds "
                        f"{d}'s {dev.max_hidden_events} events per hidden neuron and step")
    return msgs


def _plan_window_problems(plan: XyloPlan, dev: XyloDevice) -> list:
    if not plan.hidden:
        return []
    d, msgs, total = dev.name, [], plan.n_hidden
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


def plan_problems(plan: XyloPlan, device) -> list:
    """Every violation of ``device``'s limits by a layer plan."""
    dev = get_device(device)
    return _plan_io_problems(plan, dev) + _plan_layer_problems(plan, dev) + _plan_window_problems(plan, dev)


# ----------------------------------------------------------------------
# the check
# ----------------------------------------------------------------------
def _spec_rule_problems(spec, dev: XyloDevice, ranges: Optional[dict]) -> list:
    fields, problems = spec_problems(_raw_fields(spec))
    if fields is None:
        return problems
    return problems + device_problems(fields, dev, ranges)


def design_rule_check(obj: Any, device) -> list:
    """Every violation of ``device``'s limits by ``obj``, one message each
    (an empty list: it fits).

    ``obj``: an :class:`~adacal.backends.xylo.plan.XyloPlan`; an ``XyloSpec``
    or a dict of ``from_specification`` kwargs (number formats and device
    limits); or anything with ``.spec`` (and optionally ``.plan``) attributes,
    e.g. an ``XyloLowering``, whose plan then also names the layers in the
    spec's messages.
    """
    dev = get_device(device)
    if isinstance(obj, XyloPlan):
        return plan_problems(obj, dev)
    plan = getattr(obj, "plan", None)
    spec = getattr(obj, "spec", None)
    if spec is None and plan is None:
        return _spec_rule_problems(obj, dev, None)
    msgs = plan_problems(plan, dev) if isinstance(plan, XyloPlan) else []
    if spec is not None:
        ranges = plan.layer_ranges() if isinstance(plan, XyloPlan) else None
        msgs += [m for m in _spec_rule_problems(spec, dev, ranges) if m not in msgs]
    return msgs


def check_network(snn, x_cal, device) -> list[str]:
    """The design-rule check of a converted burst SNN before lowering: the
    layer plan of ``snn`` with the input encoder fitted on ``x_cal``, against
    ``device``.  Returns the problems (empty: it fits)."""
    dev = get_device(device)
    enc = fit_encoder(np.asarray(x_cal, np.float32), dev.n_inputs)
    return design_rule_check(xylo_plan(snn, enc, dev), dev)
