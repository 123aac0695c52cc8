"""The Xylo artifact's files: xylo_spec.npz / xylo_spec.json (the keyword
arguments of Rockpool's ``XyloSim.from_specification``) and the manifest's
description of the lowering (encoder, layers, readout), and reading them back."""
from __future__ import annotations

import numpy as np

from adacal.backends.xylo.encoder import InputEncoder
from adacal.backends.xylo.lowering import XyloLayer, XyloLowering, XyloReadout
from adacal.errors import AdacalError

XYLO_SPEC_NPZ, XYLO_SPEC_JSON = "xylo_spec.npz", "xylo_spec.json"
#: fixed zip member timestamp: np.savez stamps members with the current time
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_XYLO_SCALARS = {"weight_shift_in": "int64", "weight_shift_rec": "int64", "weight_shift_out": "int64",
                 "dt": "float64", "output_mode": "str"}


def xylo_spec_fields(spec) -> dict:
    """The keyword arguments of ``XyloSim.from_specification`` as numpy values
    with explicit dtypes (arrays as stored in the spec; shifts int64 scalars,
    dt float64, output_mode a str scalar).  ``aliases`` is left out when None
    (from_specification's default); adacal's lowering never uses aliases."""
    out = {}
    for k, v in spec.as_kwargs().items():
        if k == "aliases":
            if v is not None:
                raise AdacalError("xylo artifact: aliases are not supported in xylo_spec.npz")
            continue
        if k in _XYLO_SCALARS:
            out[k] = np.array(v, dtype=np.str_ if _XYLO_SCALARS[k] == "str" else _XYLO_SCALARS[k])
        else:
            out[k] = np.ascontiguousarray(v)
    return out


def npz_bytes(arrays: dict) -> bytes:
    """An .npz archive (np.load reads it) with fixed member timestamps and
    order, so equal arrays give equal bytes (np.savez writes the wall time)."""
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as z:
        for name in sorted(arrays):
            b = io.BytesIO()
            np.lib.format.write_array(b, np.asarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            z.writestr(info, b.getvalue())
    return buf.getvalue()


def spec_json(fields: dict) -> dict:
    return {"format": "adacal-xylo-spec", "format_version": 1,
            "description": "keyword arguments of rockpool XyloSim.from_specification (aliases=None); "
                           "value as nested lists, cast to dtype",
            "kwargs": {k: {"dtype": str(v.dtype) if v.dtype.kind != "U" else "str", "shape": list(v.shape),
                           "value": v.tolist()} for k, v in fields.items()}}


def read_xylo_spec(path) -> dict:
    """xylo_spec.npz -> the from_specification keyword arguments."""
    with np.load(path, allow_pickle=False) as z:
        kw = {k: (z[k].item() if k in _XYLO_SCALARS else z[k]) for k in z.files}
    kw["aliases"] = None
    return kw


def description(low) -> dict:
    """Everything of the lowering besides the spec needed to run it from files."""
    enc = low.encoder
    return {
        "device": low.device, "neuron": low.neuron, "timesteps": low.timesteps, "steps": low.steps,
        "input_delay": low.input_delay, "drain_steps": low.drain_steps, "event_gain": low.event_gain,
        "encoder": {"n_features": enc.n_features, "modes": list(enc.modes), "feature": enc.feature.tolist(),
                    "sign": enc.sign.tolist(), "offset": enc.offset.tolist(), "scale": enc.scale.tolist(),
                    "max_count": enc.max_count, "steps": low.steps, "delay": low.input_delay,
                    "rule": "u = clip(sign * (x[feature] - offset) / scale, 0, max_count); counts at steps "
                            "[delay, delay + T): floor(u (t+1) + 1/2) - floor(u t + 1/2), t = 0..T-1; "
                            "zeros elsewhere (uint8)"},
        "layers": [{"name": l.name, "hidden_ids": [l.first, l.stop], "event_value": l.event_value.tolist(),
                    "threshold": l.threshold.tolist(), "weight_shift": l.weight_shift, "window": l.window,
                    "note": l.note} for l in low.layers],
        "bias_units": list(low.bias_neurons),
        "readout": {"name": low.readout.name, "n_classes": low.readout.n_classes, "gain": low.readout.gain,
                    "weight_shift": low.readout.weight_shift, "mode": low.readout.mode,
                    "output_mode": low.readout.output_mode, "rule": low.readout.rule},
    }


def lowering_from_description(desc: dict, spec):
    e = desc["encoder"]
    enc = InputEncoder(int(e["n_features"]), tuple(e["modes"]), np.array(e["feature"], np.int64),
                       np.array(e["sign"], np.float64), np.array(e["offset"], np.float64),
                       np.array(e["scale"], np.float64), int(e["max_count"]))
    layers = tuple(XyloLayer(L["name"], int(L["hidden_ids"][0]), int(L["hidden_ids"][1]),
                             np.array(L["event_value"], np.float64), np.array(L["threshold"], np.int64),
                             int(L["weight_shift"]), int(L["window"]), L.get("note", ""))
                   for L in desc["layers"])
    r = desc["readout"]
    ro = XyloReadout(r["name"], int(r["n_classes"]), float(r["gain"]), int(r["weight_shift"]), r["mode"],
                     r["output_mode"], r["rule"])
    return XyloLowering(desc["device"], spec, enc, int(desc["timesteps"]), int(desc["steps"]), layers, ro,
                        None, int(desc["event_gain"]), {}, desc["neuron"], tuple(desc["bias_units"]),
                        int(desc["drain_steps"]), int(desc["input_delay"]))
