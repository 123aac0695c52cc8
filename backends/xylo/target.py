"""SynSense Xylo through Rockpool: a burst of k is delivered as k events.

The target checks the network against one Xylo device's limits
(devices.py), lowers it to the Xylo integer arithmetic (lower.py), stores it
as the arguments of Rockpool's XyloSim.from_specification (files.py) and
checks it against SynSense's xylosim (verify.py).  Design notes: docs/xylo.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adacal.backends.xylo.devices import DEVICES, get_device
from adacal.errors import AdacalError
from adacal.target import Lowering, Saved, Target, TargetOption

SPEC_LOAD_RULE = ("kw = {k: (v.item() if v.ndim == 0 else v) for k, v in np.load(npz).items()}; "
                  "XyloSim.from_specification(**kw, aliases=None)")


@dataclass(frozen=True)
class XyloNetwork(Lowering):
    """A network lowered for one Xylo device (the spec, encoder and readout)."""
    low: object  # backends.xylo.lowering.XyloLowering

    @property
    def timesteps(self) -> int:
        return self.low.timesteps

    def evaluate(self, conv, x, y, float_eval, log=None, parts=None) -> dict:
        from adacal.backends.xylo import report
        return report.compile_report(conv, self.low, x, y, float_eval, log, parts)

    def evaluate_part(self, conv, x):
        """The Xylo simulation of x (as simulate_part)."""
        return self.simulate_part(x)

    def simulate(self, x, y, adaptive, manifest) -> dict:
        return self.simulate_merge([self.simulate_part(x)], y, adaptive, manifest)

    def simulate_part(self, x):
        """The Xylo simulation of x (backends.xylo.evaluate.Part: activity tally, per-sample readout)."""
        from adacal.backends.xylo.evaluate import evaluate_part
        return evaluate_part(self.low, np.asarray(x, np.float32))

    def simulate_merge(self, parts, y, adaptive, manifest) -> dict:
        from adacal.backends.xylo import report
        from adacal.backends.xylo.evaluate import evaluate_merge
        act, r = report.activity_of(self.low, evaluate_merge(self.low, parts, y))
        # outputs: the output Vmem after the last step / (G T), in the ANN's units
        return {**act.as_json(), "predictions": act.predictions.tolist(), "outputs": r["scores"]}

    def save(self, conv, log=None) -> Saved:
        from adacal.backends.xylo import files, report
        low = self.low
        desc = files.description(low)
        fields = files.xylo_spec_fields(low.spec)
        out = {files.XYLO_SPEC_NPZ: files.npz_bytes(fields), files.XYLO_SPEC_JSON: files.spec_json(fields)}
        summary = {"device": low.device, "resources": report.resources(low),
                   "xylo": {k: desc[k] for k in ("neuron", "timesteps", "steps", "input_delay", "readout")},
                   "calibration": low.calibration}
        summary["hardware_config"] = _hardware_config(low, out, log)
        manifest = {"device": low.device, "xylo": desc,
                    "xylo_spec": {"npz": files.XYLO_SPEC_NPZ, "json": files.XYLO_SPEC_JSON, "load": SPEC_LOAD_RULE},
                    "readout_rule": low.readout.rule}
        return Saved(files=out, manifest=manifest, summary=summary)


def _hardware_config(low, out: dict, log) -> str:
    """Write xylo_config.json into out when a real samna is installed; say
    what happened."""
    from adacal.backends.xylo.compat import samna_available

    if not samna_available():
        return "not written: samna is not installed"
    try:  # pragma: no cover - needs the vendor's samna (not installable here: untested)
        out["xylo_config.json"] = hardware_config(low)
        return "xylo_config.json"
    except Exception as e:  # pragma: no cover - the spec files stay the artifact; say why the config is missing
        if log:
            log(f"hardware configuration not written ({type(e).__name__}: {e})")
        return f"not written: {type(e).__name__}: {e}"


def hardware_config(low):  # pragma: no cover - needs samna
    """Rockpool's hardware configuration of the spec (config_from_specification
    needs samna; not exercised by the tests, samna is not installable here)."""
    import importlib

    from adacal.backends.xylo.compat import XYLO_DEVICE_MODULES

    mod = importlib.import_module(XYLO_DEVICE_MODULES[low.device])
    kw = low.spec.as_kwargs()
    kw["weights_out"] = low.spec.padded_weights_out()  # the hardware wants all Nhid rows
    for k in ("dt", "output_mode"):
        kw.pop(k, None)
    cfg, ok, msg = mod.config_from_specification(**kw)
    if not ok:
        raise AdacalError(f"Rockpool rejected the configuration for {low.device}: {msg}")
    return cfg.to_json()


class XyloTarget(Target):
    name = "xylo"
    title = "Xylo"
    help = "compile for SynSense Xylo (Rockpool/xylosim) into an artifact directory"
    description = ("Convert, calibrate and lower the model to Xylo integers for one device; write xylo_spec.npz / "
                   "xylo_spec.json (the XyloSim.from_specification arguments), manifest.json (with the input "
                   "encoder and readout rule), report.json and report.html into OUTDIR.")
    options = (TargetOption("--device", "device", "the Xylo device to compile for", tuple(DEVICES), required=True),)
    graded_spikes = False
    adaptive_timesteps = False
    report_module = "adacal.backends.xylo.report_html"

    def configure(self, conv_options, **target_options) -> dict:
        opts = super().configure(conv_options, **target_options)
        device = opts.get("device")
        if device is None:
            raise AdacalError("target 'xylo' needs a device (xylo-audio2, xylo-audio3 or xylo-imu)")
        try:
            opts["device"] = get_device(device).name
        except (KeyError, ValueError) as e:
            raise AdacalError(str(e).strip("'\"")) from None
        if conv_options.adaptive_timesteps:
            raise AdacalError("--adaptive-timesteps is not supported for Xylo (the readout is the output "
                              "Vmem after the last step)")
        if conv_options.search_cost != "spikes":
            raise AdacalError("search cost 'events' prices a burst as one graded message (Loihi 2); Xylo "
                              "delivers a burst of k as k spikes, so its searches price spikes")
        return opts

    def check(self, conv, x_cal, target_options) -> list[str]:
        from adacal.backends.xylo.rules import check_network
        return check_network(conv.snn, np.asarray(x_cal, np.float32), target_options["device"])

    def problems_message(self, problems: list[str], target_options) -> str:
        n = len(problems)
        return (f"the network does not fit {target_options['device']} ({n} design-rule "
                f"violation{'s' if n > 1 else ''}): " + "; ".join(problems))

    def lower(self, conv, x_cal, target_options, log=None) -> XyloNetwork:
        from adacal.backends.xylo.lower import lower_xylo

        device = target_options["device"]
        if log:
            log(f"lowering to {device} integers and calibrating on the Xylo arithmetic ...")
        low = lower_xylo(conv.snn, x_cal, device, conv.options.timesteps, ann=conv.ann, seed=conv.options.seed,
                         log=log, checked=True)
        return XyloNetwork(low)

    def load(self, path: Path, manifest: dict) -> XyloNetwork:
        from adacal.backends.xylo import files
        from adacal.backends.xylo.spec import XyloSpec
        try:
            spec = XyloSpec(**files.read_xylo_spec(Path(path) / files.XYLO_SPEC_NPZ))
            return XyloNetwork(files.lowering_from_description(manifest["xylo"], spec))
        except (OSError, ValueError, KeyError) as e:
            raise AdacalError(f"{path}: broken Xylo artifact ({type(e).__name__}: {e})") from None

    def verify(self, lowering: XyloNetwork, x: np.ndarray, log=None) -> dict:
        from adacal.backends.xylo.verify import verify
        return verify(lowering.low, x, log)

    def verify_merge(self, lowering: XyloNetwork, parts) -> dict:
        from adacal.backends.xylo.verify import merge
        return merge(lowering.low, parts)


TARGET = XyloTarget()
