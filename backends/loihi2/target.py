"""Intel Loihi 2 through Lava: graded spikes carry a burst of k as one message.

The target lowers the float burst SNN to Loihi 2 integers (backends/loihi2/
lower.py), stores it as network.h5 (network_file.py) and checks it against
Lava's fixed_pt models (verify.py).  Design notes: docs/loihi2.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adacal import ir
from adacal.errors import AdacalError
from adacal.target import Lowering, Saved, Target

NETWORK_FILE = "network.h5"

_NOT_YET = {ir.Transpose: "payload routing (axis permutation)",
            ir.Take: "payload routing (slice / split / reflect or edge pad / nearest upsample)",
            ir.ConvTranspose2d: "a transposed convolution"}


@dataclass(frozen=True)
class Loihi2Network(Lowering):
    """A network lowered for Loihi 2 (the integer graph and its scales)."""
    low: object  # backends.loihi2.lower.Loihi2Lowering

    @property
    def timesteps(self) -> int:
        return self.low.timesteps

    def evaluate(self, conv, x, y, float_eval, log=None, parts=None) -> dict:
        from adacal.backends.loihi2 import evaluate
        res = None if not parts else (parts[0] if len(parts) == 1 else _join_runs(parts))
        return evaluate.compile_report(conv, self.low, x, y, float_eval, log, res)

    def evaluate_part(self, conv, x):
        """The integer run on x with the compile report's synop counts."""
        from adacal.backends.loihi2 import evaluate
        from adacal.passes.fold_pooling import fold_pooling
        return evaluate.run(self.low, x, fold_pooling(conv.snn))

    def simulate(self, x, y, adaptive, manifest) -> dict:
        return self.simulate_merge([self.simulate_part(x)], y, adaptive, manifest)

    def simulate_part(self, x):
        """The integer run on x (an int_sim result: per-step counts and readout per sample)."""
        from adacal.backends.loihi2 import evaluate
        return evaluate.run(self.low, x)

    def simulate_merge(self, parts, y, adaptive, manifest) -> dict:
        from adacal.backends.loihi2 import evaluate
        from adacal.passes.adaptive_timesteps import ExitPolicy

        policy = None
        if adaptive:
            pol = manifest["exit_policy"]
            policy = ExitPolicy(pol["metric"], pol["level"], tuple(pol["thresholds"]))
        res = parts[0] if len(parts) == 1 else _join_runs(parts)
        act = evaluate.activity(self.low, res, y, policy, manifest["input_layer_macs"])
        return {**act.as_json(), "predictions": act.predictions.tolist(), "outputs": evaluate.readout(self.low, res)}

    def save(self, conv, log=None) -> Saved:
        from adacal.backends.loihi2.network_file import write_network
        from adacal.backends.loihi2.resources import estimate

        low = self.low
        return Saved(files={NETWORK_FILE: lambda p: write_network(low, p)}, manifest={},
                     summary={"resources": estimate(low.graph)})


def _join_runs(parts):
    """Integer runs of consecutive sample shards as one (sample axis 1 of every array)."""
    import dataclasses

    def cat(arrays):
        return np.concatenate(arrays, axis=1)

    first = parts[0]
    fields = {}
    for f in dataclasses.fields(first):
        vals = [getattr(p, f.name) for p in parts]
        fields[f.name] = ({k: cat([v[k] for v in vals]) for k in vals[0]} if isinstance(vals[0], dict)
                          else cat(vals))
    return type(first)(**fields)


class Loihi2Target(Target):
    name = "loihi2"
    title = "Loihi 2"
    help = "compile for Intel Loihi 2 (Lava, graded spikes) into an artifact directory"
    description = ("Convert, calibrate and lower the model to Loihi 2 integers; write network.h5 (netx layout, "
                   "extended), manifest.json, report.json and report.html into OUTDIR.")
    graded_spikes = True
    report_module = "adacal.backends.loihi2.report_html"

    def check(self, conv, x_cal, target_options) -> list[str]:
        """The nodes the Loihi 2 lowering cannot place yet (docs/loihi2.md):
        payload routing (Transpose, Take) and transposed convolutions."""
        from adacal.passes.plan import DATA_MOVEMENT
        return [f"node '{n.name}' ({n.kind}): {_NOT_YET.get(type(n.op), 'data movement')} is not supported on "
                "Loihi 2 yet" for n in conv.snn.nodes if isinstance(n.op, DATA_MOVEMENT)]

    def lower(self, conv, x_cal, target_options, log=None) -> Loihi2Network:
        if log:
            log("lowering to Loihi 2 integers ...")
        from adacal.backends.loihi2.evaluate import lower_calibrated
        return Loihi2Network(lower_calibrated(conv, x_cal))

    def load(self, path: Path, manifest: dict) -> Loihi2Network:
        from adacal.backends.loihi2.network_file import read_network
        return Loihi2Network(read_network(Path(path) / NETWORK_FILE))

    def verify(self, lowering: Loihi2Network, x: np.ndarray, log=None) -> dict:
        from adacal.backends.loihi2.verify import verify
        if not isinstance(lowering, Loihi2Network):
            raise AdacalError("verify: not a Loihi 2 network")
        return verify(lowering.low, x, log)

    def verify_merge(self, lowering: Loihi2Network, parts) -> dict:
        from adacal.backends.loihi2.verify import merge
        return merge(lowering.low, parts)


TARGET = Loihi2Target()
