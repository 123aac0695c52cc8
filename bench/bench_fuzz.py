#!/usr/bin/env python3
"""Long fuzzing run of the ONNX frontend (the mutators of tests/test_fuzz_onnx.py).

    python bench/bench_fuzz.py                      # 20000 cases, 2 workers
    python bench/bench_fuzz.py --cases 2000 --workers 1 --seed 7
    python bench/bench_fuzz.py --level proto        # only protobuf-field mutations

Every case is a seed model (CNN with BatchNorm, the same CNN at opset 9,
a Conv1d temporal CNN, a PointNet-style Conv1d net with ReduceMax, MLP,
residual block, the hand-made graph) mutated at the protobuf level, the byte level, or both; it
goes through `load_onnx`, `inspect_model` (what `adacal inspect` runs), the
conversion to burst neurons when convertible, and a float run on two samples.
A case is *accepted* (all of it succeeded), *rejected* (an AdacalError: the
user is told what is wrong) or a *crash* (any other exception, a per-case
timeout, or a MemoryError under the address-space limit): crashes are bugs.

Prints the number of cases, accepted / rejected / crashes, cases per second,
the most common rejection messages (their first words) and, for every crash
kind, one reproducer description and the traceback's last frames.  Each worker
runs under RLIMIT_AS (--mem-gb) and a per-case alarm (--case-timeout), so a
model that would allocate or loop without bound shows up as a crash instead of
taking the machine down.  Exit code 1 if anything crashed.
"""
from __future__ import annotations

import argparse
import collections
import multiprocessing as mp
import os
import random
import re
import resource
import signal
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


class CaseTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise CaseTimeout("case took longer than the per-case timeout")


def _crash_key(e: BaseException) -> str:
    tb = traceback.extract_tb(e.__traceback__)
    where = next((f"{Path(f.filename).name}:{f.lineno}" for f in reversed(tb)
                  if "/adacal/" in f.filename or "/compiler/" in f.filename or "/frontends/" in f.filename
                  or "/passes/" in f.filename), tb[-1].name if tb else "?")
    return f"{type(e).__name__} at {where}"


def _worker(args):
    wid, start, count, seed, level, mem_gb, case_timeout = args
    import warnings

    warnings.simplefilter("ignore")
    import numpy as np
    import torch
    torch.set_num_threads(1)
    import test_fuzz_onnx as fz

    fz.seed_models()  # built before the limits apply
    for data in fz.seed_models().values():  # warm up (lazy imports) outside the timings
        fz.run_case(data)
    if mem_gb:
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        used = _vm_bytes()
        resource.setrlimit(resource.RLIMIT_AS, (used + int(mem_gb * 2 ** 30), hard))
    signal.signal(signal.SIGALRM, _alarm)
    counts = collections.Counter()
    rejections = collections.Counter()
    crashes: dict[str, dict] = {}
    slowest = (0.0, "")
    np.seterr(all="ignore")
    for case in range(start, start + count):
        rng = random.Random(f"{seed}:{case}")
        ch = fz.RandomChooser(rng)
        lv = level if level != "mixed" else rng.choice(("proto", "proto", "bytes", "both"))
        payload, desc = fz.make_case(ch, lv)
        t0 = time.perf_counter()
        signal.setitimer(signal.ITIMER_REAL, case_timeout)
        try:
            outcome = fz.run_case(payload)
            signal.setitimer(signal.ITIMER_REAL, 0)
            counts[outcome] += 1
            counts[f"{lv}:{outcome}"] += 1
            if outcome == "rejected":
                rejections[_last_reason()] += 1
        except BaseException as e:  # noqa: BLE001 - counting crashes is the point
            signal.setitimer(signal.ITIMER_REAL, 0)
            if isinstance(e, KeyboardInterrupt):
                raise
            counts["crash"] += 1
            counts[f"{lv}:crash"] += 1
            key = _crash_key(e)
            if key not in crashes:
                crashes[key] = {"count": 0, "case": case, "level": lv, "desc": " | ".join(desc),
                                "error": f"{type(e).__name__}: {str(e)[:300]}",
                                "tb": "".join(traceback.format_tb(e.__traceback__)[-4:])}
            crashes[key]["count"] += 1
        dt = time.perf_counter() - t0
        if dt > slowest[0]:
            slowest = (dt, f"case {case} ({lv}): " + " | ".join(desc))
    return wid, dict(counts), dict(rejections), crashes, slowest


_REASON = {"last": ""}


def _install_reason_hook():
    """Remember the message of the last AdacalError (to tally rejection kinds)."""
    from adacal import errors
    orig_init = errors.AdacalError.__init__

    def init(self, *a, **kw):
        _REASON["last"] = str(a[0]) if a else ""
        orig_init(self, *a, **kw)
    errors.AdacalError.__init__ = init


def _last_reason() -> str:
    msg = _REASON["last"]
    msg = re.sub(r"'[^']*'", "'…'", msg)           # names
    msg = re.sub(r"<[^>]*>", "<…>", msg)
    msg = re.sub(r"\([^()]*\)", "(…)", msg)
    msg = re.sub(r"-?\d+", "#", msg)
    return " ".join(msg.split()[:9])


def _vm_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _init():
    _install_reason_hook()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=20000)
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--level", choices=("mixed", "proto", "bytes", "both"), default="mixed")
    p.add_argument("--chunk", type=int, default=500, help="cases per task (a worker that dies loses one chunk)")
    p.add_argument("--mem-gb", type=float, default=4.0, help="extra address space per worker (0: no limit)")
    p.add_argument("--case-timeout", type=float, default=20.0, help="seconds before a case counts as a hang")
    args = p.parse_args(argv)

    t0 = time.perf_counter()
    jobs = [(i, start, min(args.chunk, args.cases - start), args.seed, args.level, args.mem_gb, args.case_timeout)
            for i, start in enumerate(range(0, args.cases, args.chunk))]
    print(f"bench_fuzz: {args.cases} cases, {args.workers} workers, seed {args.seed}, level {args.level}, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    counts, rejections, crashes = collections.Counter(), collections.Counter(), {}
    slowest = (0.0, "")

    def merge(res):
        nonlocal slowest
        _, c, r, cr, sl = res
        counts.update(c)
        rejections.update(r)
        for k, v in cr.items():
            if k in crashes:
                crashes[k]["count"] += v["count"]
            else:
                crashes[k] = v
        slowest = max(slowest, sl)

    done = 0
    if args.workers == 1:
        _init()
        for job in jobs:
            merge(_worker(job))
    else:
        from concurrent.futures import ProcessPoolExecutor, as_completed
        from concurrent.futures.process import BrokenProcessPool

        with ProcessPoolExecutor(args.workers, mp_context=mp.get_context("fork"), initializer=_init) as pool:
            futures = {pool.submit(_worker, j): j for j in jobs}
            for f in as_completed(futures):
                j = futures[f]
                try:
                    merge(f.result())
                    done += j[2]
                    print(f"  {done}/{args.cases} cases, {counts['crash']} crashes, "
                          f"{time.perf_counter() - t0:.0f} s", flush=True)
                except BrokenProcessPool:
                    # a worker died (a signal, e.g. a segfault in a native library): every
                    # unfinished chunk is lost; rerun them with --workers 1 to find the case
                    crashes.setdefault("worker died", {"count": 0, "case": j[1], "level": args.level,
                                                       "desc": "cases in the chunks listed below",
                                                       "error": "worker process terminated abruptly",
                                                       "tb": ""})
                    crashes["worker died"]["count"] += 1
                    crashes["worker died"]["tb"] += f"chunk {j[1]}..{j[1] + j[2] - 1}\n"
                    counts["crash"] += 1
    secs = time.perf_counter() - t0
    total = counts["accepted"] + counts["rejected"] + counts["crash"]
    print(f"cases     {total}")
    print(f"accepted  {counts['accepted']}")
    print(f"rejected  {counts['rejected']}  (AdacalError)")
    print(f"crashes   {counts['crash']}")
    print(f"seconds   {secs:.1f}  ({total / secs:.0f} cases/s, load average {os.getloadavg()[0]:.1f})")
    for lv in ("proto", "bytes", "both"):
        n = sum(counts[f"{lv}:{o}"] for o in ("accepted", "rejected", "crash"))
        if n:
            print(f"  {lv:6s} {n:7d} cases: {counts[f'{lv}:accepted']} accepted, {counts[f'{lv}:rejected']} "
                  f"rejected, {counts[f'{lv}:crash']} crashes")
    print(f"slowest   {slowest[0] * 1000:.0f} ms: {slowest[1][:200]}")
    print("\nmost common rejections:")
    for msg, n in rejections.most_common(15):
        print(f"  {n:6d}  {msg}")
    if crashes:
        print("\nCRASHES:")
        for k, v in sorted(crashes.items(), key=lambda kv: -kv[1]["count"]):
            print(f"- {k}: {v['count']} case(s); e.g. case {v['case']} ({v['level']}): {v['desc']}")
            print(f"  {v['error']}")
            print("  " + v["tb"].replace("\n", "\n  "))
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
