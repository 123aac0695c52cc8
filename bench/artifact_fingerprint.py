#!/usr/bin/env python3
"""Fingerprint the artifacts adacal compiles for the demo and bench models.

    python bench/artifact_fingerprint.py OUT.json            # compile, hash, write
    python bench/artifact_fingerprint.py OUT.json --compare BEFORE.json

Compiles each case below through the CLI (a fresh process each) and records
the sha256 of every target file and manifest.json, plus report.json with its
wall-clock fields (timings, seconds) removed.  --compare prints which files
differ from an earlier fingerprint and exits 1 if any does: a refactoring
that must not change behaviour runs this before and after.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

#: (case name, bench model or example, command, extra options)
CASES = [
    ("demo_cnn_loihi2", "digits_cnn", "compile-loihi2", ["--timesteps", "8", "--max-spikes", "4"]),
    ("demo_mlp_xylo", "digits16_mlp", "compile-xylo", ["--device", "xylo-audio3", "--timesteps", "16"]),
    ("resnet_loihi2", "mnist_resnet", "compile-loihi2", ["--timesteps", "4", "--max-spikes", "4"]),
    ("resnet_loihi2_search", "mnist_resnet", "compile-loihi2",
     ["--timesteps", "2", "--search-spikes", "--search-thresholds", "--adaptive-timesteps", "--calib-samples", "64"]),
    ("vgg_loihi2", "mnist_vgg", "compile-loihi2", ["--timesteps", "4", "--calibration", "advanced"]),
    ("wine_loihi2", "wine_mlp", "compile-loihi2", ["--timesteps", "8", "--search-cost", "events",
                                                  "--search-thresholds"]),
    ("wine_xylo", "wine_mlp", "compile-xylo", ["--device", "xylo-imu", "--timesteps", "8"]),
]
WALL_CLOCK = {"timings", "seconds", "adacal_seconds", "reference_seconds"}


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in WALL_CLOCK}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def _inputs(model: str, work: Path) -> dict:
    if model == "digits16_mlp":
        d = work / "examples"
        if not (d / "digits16_mlp.onnx").exists():
            subprocess.run([sys.executable, str(ROOT / "examples" / "digits16_mlp.py"), "--out", str(d)], check=True,
                           stdout=subprocess.DEVNULL)
        return {"onnx": d / "digits16_mlp.onnx", "calib": d / "digits16_calib.npz", "test": d / "digits16_test.npz"}
    import models
    return models.get(model)


def _val_subset(test: Path, work: Path, n: int = 200) -> Path:
    import numpy as np
    out = work / (test.stem + f"_{n}.npz")
    if not out.exists():
        with np.load(test) as f:
            np.savez(out, x=f["x"][:n], y=f["y"][:n])
    return out


def fingerprint(case, work: Path) -> dict:
    name, model, command, extra = case
    p = _inputs(model, work)
    out = work / name
    cmd = [sys.executable, "-m", "adacal", command, str(p["onnx"]), "--calib", str(p["calib"]),
           "--val", str(_val_subset(Path(p["test"]), work)), "-o", str(out), "--force", "--quiet", *extra]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    files = {}
    for f in sorted(out.iterdir()):
        if f.name in ("report.html",):
            continue
        if f.name == "report.json":
            files[f.name] = hashlib.sha256(json.dumps(_strip(json.loads(f.read_text())), sort_keys=True)
                                           .encode()).hexdigest()
        else:
            files[f.name] = hashlib.sha256(f.read_bytes()).hexdigest()
    return files


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--compare", metavar="BEFORE.json")
    ap.add_argument("--work", default=str(ROOT / "bench" / "out" / "fingerprint"))
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    result = {}
    for case in CASES:
        result[case[0]] = fingerprint(case, work)
        print(f"{case[0]}: {len(result[case[0]])} files", flush=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    if not args.compare:
        return 0
    before = json.loads(Path(args.compare).read_text())
    differ = 0
    for case, files in before.items():
        for f, h in files.items():
            now = result.get(case, {}).get(f)
            same = now == h
            differ += not same
            print(f"{'same   ' if same else 'DIFFERS'} {case}/{f}")
    print(f"{differ} of {sum(len(v) for v in before.values())} files differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
