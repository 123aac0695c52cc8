"""Compiled artifacts: compile a model for a target into a directory, load it
back, simulate it bit-accurately and verify it against the vendor's model.

Target-neutral: everything a target does goes through its adacal.target.Target
(found in the registry, adacal.targets).

    art = adacal.compile("model.onnx", "loihi2", calib, "build/")
    art = adacal.load_artifact("build/")
    art.simulate(data), art.verify(data, samples=5)
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adacal import targets
from adacal.errors import AdacalError
from adacal.output import MANIFEST, check_output_dir, write_output_dir
from adacal.progress import progress_task
from adacal.target import Lowering, Target

#: the source ONNX model, byte for byte, so that `simulate` can run the ANN
#: beside the artifact (docs/method.md, "Output error")
ANN_FILE = "ann.onnx"


@dataclass
class Artifact:
    """A compiled network: its directory, manifest and target network."""
    path: Path
    manifest: dict
    lowering: Lowering
    summary: dict | None = None  # report.json's content, when compiled in this process

    @property
    def target(self) -> str:
        return self.manifest["target"]

    @property
    def target_object(self) -> Target:
        return targets.get(self.target)

    def _samples(self, data):
        """data (anything adacal.data.open_data takes) as Samples, validated
        against the artifact's input and output."""
        from adacal.data import open_data
        out = self.manifest["output"]["shape"]
        return open_data(data, self.manifest["input"]["shape"], int(np.prod(out)), "data", out)

    def simulate(self, data, y=None, adaptive: bool = False, log=None, workers: int = 1, cluster=None,
                 batch_size: int = 256) -> dict:
        """Run bit-accurately on data (a .npz path, a directory with x.npy
        (and y.npy), an array x, a pair (x, y) or an iterable of batches),
        batch_size samples at a time: memory holds one batch and the
        per-sample results.  log: optional message callable or
        adacal.progress.Reporter.

        workers: 1 (default) runs here, in this process; N > 1 shards the
        samples over a local Dask cluster of N worker processes, and cluster
        (a scheduler address such as "tcp://host:8786", a distributed.Client
        or a cluster object) over the workers of a running one instead
        (adacal.distribute).  The same numbers either way; the result says
        how it ran ("engine": "local" or "dask", "workers", "shards")."""
        from adacal.distribute import check_engine, engine_fields

        workers = check_engine(workers, cluster)
        if batch_size < 1:
            raise AdacalError(f"--batch-size must be >= 1, got {batch_size}")
        samples = self._samples(data)
        y = samples.y if y is None else y
        tgt = self.target_object
        if adaptive and not tgt.adaptive_timesteps:
            raise AdacalError(f"{self.path}: adaptive timesteps are not supported for {tgt.title} artifacts")
        if adaptive and not self.manifest.get("exit_policy"):
            raise AdacalError(f"{self.path}: compiled without --adaptive-timesteps; no exit policy stored")
        if workers > 1 or cluster is not None:
            from adacal import distribute
            return distribute.simulate(self, data, samples, y, adaptive, log, workers, cluster)
        if log:
            log(f"simulating {len(samples)} samples bit-accurately ({self.target}) ...")
        t0 = time.perf_counter()
        parts = []
        with progress_task(log, "bit-accurate simulation", len(samples), "samples") as advance:
            for xb in samples.batches(batch_size):
                parts.append(self.lowering.simulate_part(xb))
                advance(len(xb))
        out = self.lowering.simulate_merge(parts, y, adaptive, self.manifest)
        out["output_error"] = self.output_error_of(out["outputs"], self.ann_outputs(samples, batch_size))
        return {**out, "seconds": time.perf_counter() - t0, **engine_fields("local", 1, 1)}

    def ann(self):
        """The source ANN (cleaned up, as compiled) from the artifact's
        ann.onnx, or None for an artifact without it (compiled from an IR
        graph, or by an older adacal)."""
        if ANN_FILE not in self.manifest.get("files", []) or not (self.path / ANN_FILE).is_file():
            return None
        from adacal.pipeline import load_model
        return load_model(self.path / ANN_FILE)

    def ann_outputs(self, x, batch_size: int = 256):
        """The source ANN's output on x (an array or Samples; None without
        ann.onnx)."""
        from adacal.data import open_data
        ann = self.ann()
        if ann is None:
            return None
        return np.concatenate([ann.run(xb, batch_size=len(xb)) for xb in open_data(x).batches(batch_size)])

    @staticmethod
    def output_error_of(outputs, ann_outputs) -> dict | None:
        """output_error of the readout against the ANN's outputs (None without them)."""
        from adacal.summary import output_error
        return None if ann_outputs is None else output_error(outputs, ann_outputs)

    def _output_error(self, x, outputs) -> dict | None:
        return self.output_error_of(outputs, self.ann_outputs(x))

    def verify(self, data, samples: int | None = None, log=None, workers: int = 1, cluster=None) -> dict:
        """Compare with the vendor's bit-accurate model on the first `samples`
        samples of data.  log: optional message callable or Reporter.
        workers / cluster: as for simulate; sharded, the shards' verdicts
        merge into the one verify gives here (mismatched samples summed, the
        first mismatch verify would name; adacal_seconds and
        reference_seconds summed over the workers)."""
        from adacal.distribute import check_engine, engine_fields

        workers = check_engine(workers, cluster)
        if samples is not None and samples < 1:
            raise AdacalError(f"--samples must be >= 1, got {samples}")
        every = self._samples(data)
        x = every.rows(0, samples or len(every))
        if workers > 1 or cluster is not None:
            from adacal import distribute
            return distribute.verify(self, data, x, len(every), log, workers, cluster)
        t0 = time.perf_counter()
        out = self.target_object.verify(self.lowering, x, log)
        return {**out, "seconds": time.perf_counter() - t0, **engine_fields("local", 1, 1)}


def compile_model(model, target: str, calib, out_dir, val=None, options=None, force: bool = False,
                  log=None, model_path=None, emit_nir: bool = False, workers: int = 1, cluster=None,
                  **target_options) -> tuple[Artifact, dict]:
    """Convert, check the design rules, lower for `target`, evaluate and write
    the artifact directory (with emit_nir also network.nir: the float burst
    SNN as a NIR graph).  target_options: the target's own (Xylo: device)."""
    from adacal.pipeline import ConvertOptions, conversion_fields, convert_graph, load_model, split_calibration

    tgt = targets.get(target)
    t0 = time.perf_counter()
    opts = options or ConvertOptions()
    opts.check()
    topts = tgt.configure(opts, **{k: v for k, v in target_options.items() if v is not None})
    check_output_dir(out_dir, force)
    ann = load_model(model)
    calib, val = _as_data(calib, val, ann)
    cal, yc, x_check = split_calibration(calib, opts)
    conv = convert_graph(ann, cal, yc, opts, log, x_check, workers, cluster)
    nir_file = _nir_file(conv) if emit_nir else None  # built before lowering: an export problem surfaces early
    xc = lowering_samples(cal)
    problems = tgt.check(conv, xc, topts)
    if problems:
        raise AdacalError(tgt.problems_message(problems, topts))
    net, summary = _lower_and_evaluate(tgt, conv, xc, topts, val, log, workers, cluster)
    saved = net.save(conv, log)
    files = dict(saved.files)
    source = _source_bytes(model, model_path)
    if source is not None:
        files[ANN_FILE] = source
    if nir_file is not None:
        files["network.nir"] = nir_file
    man = _manifest(conv, source, tgt, saved, files)
    summary = {"target": tgt.name, **saved.summary, **summary, "options": opts.recorded(),
               "timings": {**conv.timings, **summary["timings"]}}
    summary["seconds"] = time.perf_counter() - t0
    summary.update(conversion_fields(conv))
    files.update({MANIFEST: man, "report.json": summary, "report.html": _report_html(summary, man)})
    path = write_output_dir(out_dir, files, force=force)
    return Artifact(path, man, net, summary), summary


def _as_data(calib, val, ann):
    from adacal.data import open_data
    classes = int(np.prod(ann.output_shape))
    calib = open_data(calib, ann.input_shape, classes, "calibration", ann.output_shape)
    return calib, (None if val is None else open_data(val, ann.input_shape, classes, "validation", ann.output_shape))


#: at most this many calibration samples reach a target's lowering
LOWERING_SAMPLES = 256


def lowering_samples(cal) -> np.ndarray:
    """The calibration samples a target's lowering sees (the input range, the
    integer calibration), in memory: all of them, or the first
    LOWERING_SAMPLES (in the calibration order) when there are more, so that
    its memory does not grow with --calib-samples and does not depend on
    --batch-size."""
    return cal.array() if len(cal) <= LOWERING_SAMPLES else next(iter(cal.batches(LOWERING_SAMPLES)))


def _source_bytes(model, model_path) -> bytes | None:
    """The ONNX model as given (file bytes; stored as ann.onnx and hashed
    into the manifest), or None for an IR graph without a path."""
    import os
    path = model_path or (model if isinstance(model, (str, os.PathLike)) else None)
    if path is not None:
        return Path(path).read_bytes()
    if isinstance(model, (bytes, bytearray)):
        return bytes(model)
    if hasattr(model, "SerializeToString"):  # onnx.ModelProto
        return model.SerializeToString(deterministic=True)
    return None


def _nir_file(conv):
    from adacal.backends.nir.export import nir_writer
    return nir_writer(conv)


def _lower_and_evaluate(tgt: Target, conv, xc, topts: dict, val, log, workers: int = 1,
                        cluster=None) -> tuple[Lowering, dict]:
    """Lower, then (with validation data) evaluate the float SNN and the
    target's network side by side; timings of both."""
    from adacal.pipeline import evaluate

    t = time.perf_counter()
    net = tgt.lower(conv, xc, topts, log)
    timings = {"lowering": time.perf_counter() - t}
    out = {"timings": timings}
    if val is not None:
        if log:
            log(f"evaluating float and bit-accurate ({tgt.title}) networks ...")
        flt = evaluate(conv, val, val.y, adaptive=False, workers=workers, cluster=cluster, log=log)
        xv, parts = val.array(), None
        if workers > 1 or cluster is not None:
            from adacal import distribute
            parts = distribute.target_evaluation(net, conv, xv, log, workers, cluster)
        out.update(net.evaluate(conv, xv, val.y, flt, log, parts))
        out.update({k: flt[k] for k in ("engine", "workers")})
        timings["evaluation"] = time.perf_counter() - t - timings["lowering"]
    return net, out


def _manifest(conv, source: bytes | None, tgt: Target, saved, files: dict) -> dict:
    from adacal.pipeline import manifest
    from adacal.runtime_sim import energy

    man = manifest(conv, source, tgt.name)
    man["input_layer_macs"] = energy.input_macs(conv.snn)
    man.update(saved.manifest)
    man["files"] = sorted(files) + [MANIFEST, "report.json", "report.html"]
    return man


def load_artifact(path) -> Artifact:
    """The artifact in directory path (its target reads its own files)."""
    p = Path(path)
    try:
        with open(p / MANIFEST) as f:
            man = json.load(f)
    except (OSError, ValueError) as e:
        raise AdacalError(f"{p}: not an adacal artifact directory (cannot read {MANIFEST}: {e})") from None
    name = man.get("target") if isinstance(man, dict) else None
    if name not in targets.names():
        raise AdacalError(f"{p}: artifact target '{name}' cannot be simulated "
                          f"(expected one of {', '.join(targets.names())})")
    return Artifact(p, man, targets.get(name).load(p, man))


def _report_html(summary: dict, man: dict) -> bytes:
    from adacal.report_html import render
    return render(summary, man).encode("utf-8")
