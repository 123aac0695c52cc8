"""Progress reporting (adacal.progress, issue 7): rich bars on a terminal,
plain occasional lines on a pipe, nothing with --quiet or --json, and never a
byte of it on stdout.

The end-to-end runs use the small MLP of tests/onnx_fixtures.py (20-32-16-5)
with seeded random data, so every CLI run takes a few seconds (interpreter and
torch start-up dominate).  The independent runs are started together, two at
a time, by one module fixture (as in test_convert_cli.py).
"""
from __future__ import annotations

import io
import json
import os
import pty
import re
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from adacal.progress import PLAIN_INTERVAL, Reporter, noop_advance, progress_task

ROOT = Path(__file__).resolve().parents[1]
SEARCHES = ("--search-spikes", "--spike-range", "1:8", "--search-thresholds")
ANSI = re.compile(r"\x1b\[")
BAR = "\u2501"  # rich's bar character


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADACAL_PROGRESS")}
    env.update(PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.update(extra)
    return env


def run_cli(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "adacal", *map(str, args)], capture_output=True, text=True,
                          env=env or _env(), timeout=timeout, cwd=ROOT)


def run_cli_pty(*args, timeout=300):
    """stderr on a pseudo-terminal (what a user's shell gives), stdout a pipe."""
    master, slave = pty.openpty()
    env = _env(TERM="xterm-256color", COLUMNS="120")
    proc = subprocess.Popen([sys.executable, "-m", "adacal", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=slave, env=env, cwd=ROOT)
    os.close(slave)
    chunks = []

    def read():
        while True:
            try:
                b = os.read(master, 65536)
            except OSError:  # EIO: the child closed its side
                break
            if not b:
                break
            chunks.append(b)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    out, _ = proc.communicate(timeout=timeout)
    reader.join(timeout=10)
    os.close(master)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out.decode(),
                                       b"".join(chunks).decode(errors="replace"))


def strict_json(text):
    def bad(c):
        raise ValueError(f"non-JSON constant {c}")
    return json.loads(text, parse_constant=bad)


def assert_pure_json(proc):
    """Exit 0, stdout exactly one JSON object, stderr empty."""
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{proc.stderr}"
    assert proc.stderr == "", f"stderr not empty with --json:\n{proc.stderr}"
    obj = strict_json(proc.stdout)  # raises on anything but one JSON document
    assert isinstance(obj, dict)
    return obj


def table(stdout: str) -> list[str]:
    """The convert table without its wall-time line."""
    return [line for line in stdout.splitlines() if not line.startswith("converted in")]


# ---------------------------------------------------------------------------
# the model, data and every CLI run
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mlp(onnx_model, tmp_path_factory):
    import onnx_fixtures

    model = onnx_model("mlp@cf")
    d = tmp_path_factory.mktemp("progress")
    x = np.random.default_rng(0).standard_normal((160, 20)).astype(np.float32)
    y = onnx_fixtures.ort_run(model, x).argmax(axis=1)
    np.savez(d / "calib.npz", x=x[:96], y=y[:96])
    np.savez(d / "val.npz", x=x[96:], y=y[96:])
    return {"model": model, "calib": d / "calib.npz", "val": d / "val.npz", "dir": d}


@pytest.fixture(scope="module")
def runs(mlp):
    m, c, v, d = mlp["model"], mlp["calib"], mlp["val"], mlp["dir"]
    conv = ("convert", m, "--calib", c, "--val", v, *SEARCHES)
    art = d / "loihi2"

    def loihi2_chain():
        out = {"compile_json": run_cli("compile-loihi2", m, "--calib", c, "--val", v, "-o", art, "-T", "4",
                                       "--search-spikes", "--spike-range", "1:4", "--json")}
        out["verify_json"] = run_cli("verify", art, "--data", v, "--samples", "6", "--json")
        out["verify_plain"] = run_cli("verify", art, "--data", v, "--samples", "6",
                                      env=_env(ADACAL_PROGRESS_INTERVAL="0"))
        out["artifact"] = art
        return out

    jobs = {
        "loihi2": loihi2_chain,  # the longest chain first
        "json": lambda: run_cli(*conv, "--json"),
        "quiet": lambda: run_cli(*conv, "--quiet"),
        "plain": lambda: run_cli(*conv),
        "plain_every_step": lambda: run_cli(*conv, env=_env(ADACAL_PROGRESS_INTERVAL="0")),
        "tty": lambda: run_cli_pty(*conv),
        "forced_rich": lambda: run_cli(*conv, env=_env(ADACAL_PROGRESS="rich", COLUMNS="120")),
    }
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(fn) for name, fn in jobs.items()}
        res = {name: f.result() for name, f in futures.items()}
    res.update(res.pop("loihi2"))
    return res


# ---------------------------------------------------------------------------
# end to end
# ---------------------------------------------------------------------------

def test_convert_json_is_one_object_and_stderr_is_empty(runs):
    s = assert_pure_json(runs["json"])
    assert "snn_accuracy" in s and "burst_caps" in s["searches"] and "threshold_ratios" in s["searches"]


def test_quiet_prints_the_table_and_nothing_on_stderr(runs):
    proc = runs["quiet"]
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert "SNN accuracy" in proc.stdout and "adacal:" not in proc.stdout
    with pytest.raises(ValueError):
        json.loads(proc.stdout)


def test_pipe_gets_plain_lines_and_stdout_only_the_table(runs):
    proc, quiet = runs["plain"], runs["quiet"]
    assert proc.returncode == 0, proc.stderr
    assert not ANSI.search(proc.stderr) and BAR not in proc.stderr, "control codes on a non-terminal stderr"
    lines = proc.stderr.splitlines()
    assert lines and all(line.startswith("adacal: ") for line in lines), proc.stderr
    for step in ("thresholds", "burst-cap search", "calibration", "threshold-ratio search"):
        assert f"adacal: {step} ..." in lines and any(re.fullmatch(rf"adacal: {step}: [\d.]+ s", l) for l in lines)
    # the same table as with --quiet: progress changes nothing but stderr
    assert table(proc.stdout) == table(quiet.stdout)


def test_pipe_count_lines_for_the_searches(runs):
    """With ADACAL_PROGRESS_INTERVAL=0 every step of a task writes its count."""
    proc = runs["plain_every_step"]
    assert proc.returncode == 0, proc.stderr
    assert not ANSI.search(proc.stderr)
    err = proc.stderr
    # 2 neuron layers x 8 caps; 2 layers x 18 ratios at most (the search prunes)
    for k in range(1, 17):
        assert f"adacal: burst-cap search {k}/16 layer x cap trials\n" in err
    ratio = [int(n) for n in re.findall(r"adacal: threshold-ratio search (\d+)/36 layer x ratio trials", err)]
    assert ratio and ratio == list(range(1, len(ratio) + 1))
    assert "adacal: thresholds 2/2 layers" in err and "adacal: calibration 2/2 layers" in err
    assert table(proc.stdout) == table(runs["quiet"].stdout)


def test_terminal_gets_rich_bars(runs):
    proc = runs["tty"]
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr
    assert BAR in err and ANSI.search(err), f"no rich progress bar on the terminal:\n{err[:2000]!r}"
    for task in ("burst-cap search", "threshold-ratio search", "layer x cap trials"):
        assert task in err
    assert "16/16" in err  # the burst-cap bar drawn complete
    assert "adacal: burst-cap search ..." in err  # messages still shown, above the bars
    # stdout: the table, untouched
    assert not ANSI.search(proc.stdout) and BAR not in proc.stdout
    assert table(proc.stdout) == table(runs["quiet"].stdout)


def test_adacal_progress_rich_forces_bars_on_a_pipe(runs):
    proc = runs["forced_rich"]
    assert proc.returncode == 0, proc.stderr
    assert BAR in proc.stderr and "burst-cap search" in proc.stderr
    assert table(proc.stdout) == table(runs["quiet"].stdout)


def test_compile_and_verify_json_are_pure_json(runs):
    s = assert_pure_json(runs["compile_json"])
    assert s["target"] == "loihi2" and "snn_accuracy" in s
    v = assert_pure_json(runs["verify_json"])
    assert v["samples"] == 6 and v["mismatched_samples"] == 0 and v["reference"] == "lava-fixed_pt"


def test_verify_progress_over_lava_samples_stays_bit_exact(runs):
    """With progress the Lava run is split into runs of whole samples: same result."""
    proc = runs["verify_plain"]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "bit-exact" in proc.stdout and "adacal:" not in proc.stdout
    counts = [int(n) for n in re.findall(r"adacal: Lava run (\d+)/6 samples", proc.stderr)]
    assert counts and counts[-1] == 6 and counts == sorted(counts), proc.stderr
    assert not ANSI.search(proc.stderr)


def test_simulate_quiet_and_default(runs, mlp, capsys):
    """In-process (cheap): capsys' stderr is no terminal, as on a pipe."""
    from adacal import cli

    outs = []
    for extra in (["--quiet"], []):
        capsys.readouterr()
        code = cli.main(["simulate", str(runs["artifact"]), "--data", str(mlp["val"]), *extra])
        outs.append((code, *capsys.readouterr()))
    (qc, qout, qerr), (pc, pout, perr) = outs
    assert qc == 0 and qerr == "", qerr
    assert pc == 0 and perr.startswith("adacal: simulating 64 samples") and not ANSI.search(perr)
    q, p = (subprocess.CompletedProcess([], c, o, e) for c, o, e in outs)
    assert q.stdout == p.stdout and "adacal:" not in p.stdout


# ---------------------------------------------------------------------------
# the reporter itself
# ---------------------------------------------------------------------------

def test_plain_task_every_step_and_closing_line():
    buf = io.StringIO()
    rep = Reporter(buf, mode="plain", interval=0)
    rep("hello")
    with rep.task("search", 4, "trials") as advance:
        for _ in range(4):
            advance()
    assert buf.getvalue().splitlines() == ["adacal: hello"] + [f"adacal: search {k}/4 trials" for k in range(1, 5)]


def test_plain_short_task_is_silent_and_pruned_task_closes_with_its_count(monkeypatch):
    buf = io.StringIO()
    rep = Reporter(buf, mode="plain")  # default interval
    assert rep.interval == PLAIN_INTERVAL
    with rep.task("quick", 100, "steps") as advance:
        for _ in range(100):
            advance()
    assert buf.getvalue() == ""  # shorter than the interval: nothing beyond the step's own messages
    # a slow task that ends early (pruned): occasional lines, then its real count
    clock = iter(float(t) for t in range(0, 1000, 3))
    monkeypatch.setattr("adacal.progress.time.monotonic", lambda: next(clock))
    rep = Reporter(buf, mode="plain", interval=5)
    with rep.task("ratio search", 36, "trials") as advance:
        for _ in range(7):
            advance()
    lines = buf.getvalue().splitlines()
    assert lines[:3] == ["adacal: ratio search 2/36 trials", "adacal: ratio search 4/36 trials",
                         "adacal: ratio search 6/36 trials"]
    assert re.fullmatch(r"adacal: ratio search 7/36 trials \([\d.]+ s\)", lines[-1]) and len(lines) == 4


def test_rich_task_advances_to_total_and_clears():
    buf = io.StringIO()
    with Reporter(buf, mode="rich") as rep:  # forced: a StringIO is no terminal
        with rep.task("thresholds", 3, "layers") as advance:
            for _ in range(3):
                advance()
            task = rep._progress.tasks[0]
            assert (task.completed, task.total) == (3, 3)
        assert rep._progress.tasks == []  # each bar is cleared when its task ends
        rep("done")
        with rep.task("pruned", 10) as advance:
            advance(4)
    out = buf.getvalue()
    assert BAR in out and "3/3" in out and "layers" in out and "adacal: done" in out
    assert "4/4" in out  # an early end completes the bar at what was done
    assert rep._progress is None


def test_rich_task_is_removed_on_error():
    rep = Reporter(io.StringIO(), mode="rich")
    with pytest.raises(RuntimeError):
        with rep.task("failing", 5) as advance:
            advance()
            raise RuntimeError("boom")
    assert rep._progress.tasks == []
    rep.close()
    rep.close()  # idempotent


def test_noop_reporters_are_safe():
    for log in (None, print, lambda msg: None):
        with progress_task(log, "anything", 10, "steps") as advance:
            assert advance is noop_advance
            advance()
            advance(5)
    buf = io.StringIO()
    rep = Reporter(buf, mode="off")
    with progress_task(rep, "search", 3) as advance:
        advance(3)
    rep("message")
    assert buf.getvalue() == "adacal: message\n"  # 'off': messages only


def test_mode_from_environment(monkeypatch):
    monkeypatch.setenv("ADACAL_PROGRESS", "plain")
    monkeypatch.setenv("ADACAL_PROGRESS_INTERVAL", "0.5")
    rep = Reporter.from_env(io.StringIO())
    assert (rep.mode, rep.interval) == ("plain", 0.5)
    monkeypatch.setenv("ADACAL_PROGRESS", "nonsense")  # falls back to auto: a StringIO is no terminal
    monkeypatch.setenv("ADACAL_PROGRESS_INTERVAL", "x")
    rep = Reporter.from_env(io.StringIO())
    assert (rep.mode, rep.interval) == ("plain", PLAIN_INTERVAL)
    monkeypatch.setenv("ADACAL_PROGRESS", "rich")
    assert Reporter.from_env(io.StringIO()).mode == "rich"
    with pytest.raises(ValueError):
        Reporter(io.StringIO(), mode="loud")


def test_pipeline_tasks_reach_their_totals(mlp):
    """Every task the pipeline opens advances to its total (the ratio search
    to at most its total: it prunes), through a duck-typed reporter."""
    from contextlib import contextmanager

    from adacal.data import load_data
    from adacal.pipeline import convert

    class Recorder:
        def __init__(self):
            self.tasks, self.messages = [], []

        def __call__(self, msg):
            self.messages.append(msg)

        @contextmanager
        def task(self, description, total=None, unit=""):
            rec = {"description": description, "total": total, "done": 0}
            self.tasks.append(rec)

            def advance(n=1):
                rec["done"] += n
            yield advance

    x, y = load_data(mlp["calib"])
    xv, yv = load_data(mlp["val"])
    rec = Recorder()
    convert(str(mlp["model"]), (x, y), (xv, yv), log=rec, search_spikes=True, spike_range=(1, 8),
            search_thresholds=True)
    got = {t["description"]: t for t in rec.tasks}
    for name, total in (("thresholds", 2), ("burst-cap search", 16), ("calibration", 2),
                        ("calibration after ratios", 2)):
        assert (got[name]["total"], got[name]["done"]) == (total, total), got[name]
    ratio = got["threshold-ratio search"]
    assert ratio["total"] == 36 and 2 <= ratio["done"] <= 36
    ev = got["float SNN evaluation"]
    assert (ev["total"], ev["done"]) == (len(xv), len(xv)) and "burst-cap search ..." in rec.messages
