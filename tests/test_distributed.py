"""simulate / verify sharded over samples on Dask (adacal.distribute), on a
real LocalCluster of 2 worker processes:

* `simulate --workers 2` prints the in-process JSON apart from timings and
  the engine fields, for Loihi 2 (the digits CNN) and Xylo (the digits16 MLP);
* `verify --workers 2` likewise, against Lava (non-daemonic workers: Lava
  starts processes of its own) and against XyloSim;
* a worker that dies on a shard's first attempt: the shard is retried and the
  answer is the in-process one; a worker dying on every attempt: one
  `adacal: error:` line naming the shard, exit 2, nothing on stdout;
* the Python API with arrays on a cluster given by its scheduler address,
  with progress advancing as shards complete;
* the merge of shards' verdicts names the mismatch verify names on all the
  samples (checked on the comparison itself, no cluster);
* without --workers, dask is not imported; a sharded XyloSim verify does not
  import torch in the calling process; the local cluster's workers end
  without Python's finalization once closed.
"""
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
TIMING = ("seconds", "adacal_seconds", "reference_seconds", "engine", "workers", "shards")

import distributed  # noqa: F401,E402  (a core dependency: missing is an install bug)


def adacal(*args, env=None):
    return subprocess.run([sys.executable, "-m", "adacal", *map(str, args)], capture_output=True, text=True,
                          env={**ENV, **(env or {})})


def run_json(capsys, *args) -> tuple[int, dict]:
    from adacal import cli
    capsys.readouterr()
    code = cli.main([*map(str, args), "--json"])
    return code, json.loads(capsys.readouterr().out)


def strip(res: dict) -> dict:
    return {k: v for k, v in res.items() if k not in TIMING}


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    out = tmp_path_factory.mktemp("examples")
    for script in ("digits_cnn.py", "digits16_mlp.py"):
        subprocess.run([sys.executable, str(ROOT / "examples" / script), "--out", str(out)], check=True,
                       capture_output=True, env=ENV)
    return out


@pytest.fixture(scope="module")
def arts(example, tmp_path_factory):
    """{'loihi2': (artifact, data), 'xylo': (artifact, data)}"""
    import adacal
    root = tmp_path_factory.mktemp("dist")
    adacal.compile(example / "digits_cnn.onnx", "loihi2", example / "digits_calib.npz", root / "loihi2", timesteps=8)
    adacal.compile(example / "digits16_mlp.onnx", "xylo", example / "digits16_calib.npz", root / "xylo",
                   device="xylo-audio3", timesteps=16)
    return {"loihi2": (root / "loihi2", example / "digits_test.npz"),
            "xylo": (root / "xylo", example / "digits16_test.npz")}


@pytest.fixture(scope="module")
def local_sim(arts):
    """The in-process simulate --json of both artifacts."""
    from adacal.artifact import load_artifact
    out = {}
    for name, (art, data) in arts.items():
        res = load_artifact(art).simulate(str(data))
        res.pop("predictions"), res.pop("outputs")
        out[name] = json.loads(json.dumps(res))
    return out


@pytest.mark.parametrize("target", ["loihi2", "xylo"])
def test_simulate_on_two_workers_prints_the_in_process_json(arts, local_sim, target, capsys):
    art, data = arts[target]
    code, res = run_json(capsys, "simulate", art, "--data", data, "--workers", 2)
    assert code == 0
    assert (res["engine"], res["workers"], local_sim[target]["engine"], local_sim[target]["workers"]) == \
        ("dask", 2, "local", 1)
    assert res["shards"] > 2  # several per worker
    assert strip(res) == strip(local_sim[target])
    assert list(res) == list(local_sim[target])  # the same fields in the same order


@pytest.mark.parametrize("target, samples", [("loihi2", 4), ("xylo", 40)])
def test_verify_on_two_workers_gives_the_in_process_verdict(arts, target, samples, capsys):
    art, data = arts[target]
    code1, one = run_json(capsys, "verify", art, "--data", data, "--samples", samples)
    code2, two = run_json(capsys, "verify", art, "--data", data, "--samples", samples, "--workers", 2)
    assert code1 == code2 == 0
    assert strip(one) == strip(two)
    assert two["samples"] == samples and two["mismatched_samples"] == 0 and two["first_mismatch"] is None
    assert (two["engine"], two["workers"], one["engine"]) == ("dask", 2, "local")
    assert two["shards"] >= 2


@pytest.mark.parametrize("target", ["loihi2", "xylo"])
def test_compile_evaluation_on_two_workers_gives_the_in_process_artifact(example, tmp_path, capsys, target):
    """compile-* --val with its float and bit-accurate evaluations sharded:
    the same network and manifest byte for byte, and the report's numbers
    apart from timings; the validation data as a directory (each worker
    opens it for the float evaluation)."""
    name = "digits" if target == "loihi2" else "digits16"
    model = example / ("digits_cnn.onnx" if target == "loihi2" else "digits16_mlp.onnx")
    extra = ("-T", 4) if target == "loihi2" else ("-T", 16, "--device", "xylo-audio3")
    val = tmp_path / "val"
    val.mkdir()
    with np.load(example / f"{name}_test.npz") as f:
        np.save(val / "x.npy", f["x"]), np.save(val / "y.npy", f["y"])
    outs = {}
    for w in (1, 2):
        outs[w] = tmp_path / f"w{w}"
        code, res = run_json(capsys, f"compile-{target}", model, "--calib", example / f"{name}_calib.npz",
                             "--val", val, *extra, "-o", outs[w], "--workers", w)
        assert code == 0
        outs[w] = (outs[w], res)
    (a, one), (b, two) = outs[1], outs[2]
    files = ("manifest.json", "network.h5") if target == "loihi2" else ("manifest.json", "xylo_spec.npz")
    for name in files:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    drop = ("seconds", "timings", "engine", "workers")
    assert {k: v for k, v in one.items() if k not in drop} == {k: v for k, v in two.items() if k not in drop}
    assert (one["engine"], one["workers"], two["engine"], two["workers"]) == ("local", 1, "dask", 2)


def test_searches_on_two_workers_choose_what_one_process_chooses(example, capsys):
    """Both searches' trials sharded over the calibration samples: the same
    tables and choices (and so the same network) as in one process."""
    args = ("convert", example / "digits_cnn.onnx", "--calib", example / "digits_calib.npz", "-T", 4,
            "--calib-samples", 96, "--search-spikes", "--spike-range", "2:5", "--energy-budget", 0.8,
            "--search-thresholds")
    code1, one = run_json(capsys, *args)
    code2, two = run_json(capsys, *args, "--workers", 2)
    assert code1 == code2 == 0
    assert one["searches"] == two["searches"]
    assert one["calibration_check"] == two["calibration_check"]
    assert len(set(one["searches"]["burst_caps"]["chosen"])) > 1 or len(set(one["searches"]["threshold_ratios"]["chosen"])) > 1


def test_a_worker_killed_once_is_retried(arts, local_sim, capsys, monkeypatch):
    """The worker running shard 0 exits (os._exit) on its first attempt: the
    shard runs again and the answer is the in-process one."""
    from adacal.distribute import ENV_TEST_EXIT
    monkeypatch.setenv(ENV_TEST_EXIT, "0")  # the worker processes inherit it
    art, data = arts["loihi2"]
    code, res = run_json(capsys, "simulate", art, "--data", data, "--workers", 2)
    assert code == 0 and strip(res) == strip(local_sim["loihi2"])


def test_a_shard_whose_worker_dies_every_time_is_one_clear_error(arts):
    art, data = arts["xylo"]
    r = adacal("verify", art, "--data", data, "--samples", 40, "--workers", 2, "--json",
               env={"ADACAL_TEST_WORKER_EXIT": "1:always"})
    assert r.returncode == 2 and r.stdout == "", (r.returncode, r.stdout, r.stderr)
    assert r.stderr.strip().splitlines() == [
        "adacal: error: verify: shard 1 (samples 5-9) failed twice (its worker process died while running it); "
        "no result"]


def test_python_api_with_arrays_on_a_running_cluster_with_progress(arts):
    """cluster= a scheduler address (what --cluster takes); data as arrays;
    the progress reporter advances as shards complete."""
    import dask
    from distributed import LocalCluster

    from adacal.artifact import load_artifact
    from adacal.progress import Reporter

    art, data = arts["xylo"]
    with np.load(data) as f:
        x, y = f["x"][:200], f["y"][:200]
    a = load_artifact(art)
    here = a.simulate((x, y))
    with dask.config.set({"distributed.worker.daemon": False}), \
            LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
        stream = io.StringIO()
        rep = Reporter(stream, mode="plain", interval=0)
        there = a.simulate((x, y), log=rep, cluster=cluster.scheduler_address)
        verdict = a.verify(x, samples=20, cluster=cluster.scheduler_address)
    assert there["engine"] == "dask" and there["workers"] == 2
    assert there["predictions"] == here["predictions"] and np.array_equal(there["outputs"], here["outputs"])
    assert strip({k: v for k, v in there.items() if k not in ("predictions", "outputs")}) == \
        strip({k: v for k, v in here.items() if k not in ("predictions", "outputs")})
    counts = [int(line.split()[3].split("/")[0]) for line in stream.getvalue().splitlines()
              if line.startswith("adacal: bit-accurate simulation ")]
    assert counts == sorted(counts) and counts[-1] == 200 and len(counts) >= there["shards"]
    assert "connecting to the Dask cluster at tcp://" in stream.getvalue()
    assert verdict["samples"] == 20 and verdict["mismatched_samples"] == 0 and verdict["engine"] == "dask"


def test_bad_worker_options_are_one_line_errors(arts, capsys):
    from adacal import cli
    art, data = arts["xylo"]
    assert cli.main(["simulate", str(art), "--data", str(data), "--workers", "0"]) == 2
    assert capsys.readouterr().err == "adacal: error: --workers must be >= 1, got 0\n"
    assert cli.main(["verify", str(art), "--data", str(data), "--workers", "2", "--cluster", "tcp://x:1"]) == 2
    assert "--workers and --cluster exclude each other" in capsys.readouterr().err


def test_an_unreachable_scheduler_is_one_line_error(arts):
    art, data = arts["xylo"]
    r = adacal("simulate", art, "--data", data, "--cluster", "tcp://127.0.0.1:9", "--quiet",
               env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"})
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("adacal: error: cannot connect to the Dask scheduler at tcp://127.0.0.1:9")
    assert len(r.stderr.strip().splitlines()) == 1


def imported_by(*args, modules) -> list[str]:
    """Whether each of `modules` is imported in a fresh process after
    cli.main(args), then main's exit code."""
    code = ("import sys; from adacal import cli; code = cli.main(%r); print(*[m in sys.modules for m in %r], code)"
            % ([*map(str, args), "--quiet"], modules))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV)
    assert r.stdout.strip(), r.stderr
    return r.stdout.strip().splitlines()[-1].split()


def test_in_process_runs_do_not_import_dask(arts):
    art, data = arts["xylo"]
    assert imported_by("simulate", art, "--data", data, modules=("dask", "distributed")) == ["False", "False", "0"]


def test_a_sharded_xylo_verify_does_not_import_torch_in_the_calling_process(arts):
    # the calling process only merges: torch (~1 s to import) would delay the cluster's start
    art, data = arts["xylo"]
    assert imported_by("verify", art, "--data", data, "--samples", 8, "--workers", 2,
                       modules=("torch",)) == ["False", "0"]


def test_the_local_clusters_workers_end_without_finalization():
    from adacal.distribute import dask_client
    from adacal.worker_exit import QuickExit
    with dask_client(2) as (client, n, _):
        assert n == 2
        assert set(client.run(lambda dask_worker: QuickExit.name in dask_worker.plugins).values()) == {True}
    # what the plugin does when its worker closes: the process ends at once, its output flushed, and the
    # exit handlers registered before it (Python's finalization) do not run
    code = ("import atexit, sys; atexit.register(print, 'finalized'); from adacal.worker_exit import QuickExit; "
            "print('closed', end=''); QuickExit().teardown(None)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV)
    assert (r.returncode, r.stdout) == (0, "closed"), r.stderr


# ---------------------------------------------------------------------------
# merging the shards' verdicts (no cluster)
# ---------------------------------------------------------------------------
def _shards(n, cuts):
    edges = [0, *cuts, n]
    return list(zip(edges[:-1], edges[1:]))


def test_loihi2_merge_names_the_mismatch_verify_names(arts):
    """Differences at layer 2 / sample 1 and layer 1 / sample 4: on all
    samples compare names layer 1's (layers come first); merged from shards
    [0, 2) and [2, 5) the same, not the lowest sample's."""
    from adacal.artifact import load_artifact
    from adacal.backends.loihi2.verify import compare, merge
    from adacal.runtime_sim.int_sim import simulate_int
    from adacal.target import merge_verify_results

    art, data = arts["loihi2"]
    low = load_artifact(art).lowering.low
    with np.load(data) as f:
        x = f["x"][:5]
    ours, _ = simulate_int(low.graph, x, low.timesteps, record_payloads=True)
    layers = [nd.name for nd in low.graph.nodes if nd.name in ours.payloads]
    ref = {k: v.copy() for k, v in ours.payloads.items()}
    ref[layers[1]][1, 1].flat[7] += 1  # step 2, sample 1
    ref[layers[0]][5, 4].flat[3] += 1  # step 6, sample 4
    out_ref = ours.readout.copy()
    out_ref[0, 2, 0] += 1  # the readout, step 1, sample 2

    def verdict(a, b):
        first, bad = compare({k: v[:, a:b] for k, v in ours.payloads.items()}, ours.readout[:, a:b],
                             {k: v[:, a:b] for k, v in ref.items()}, out_ref[:, a:b], low.graph)
        return {"samples": b - a, "mismatched_samples": int(bad.sum()), "first_mismatch": first}

    whole = verdict(0, 5)
    assert whole["first_mismatch"]["layer"] == layers[0] and whole["first_mismatch"]["sample"] == 4
    for cuts in ([2], [1, 3], [4]):
        parts = [(a, verdict(a, b)) for a, b in _shards(5, cuts)]
        assert merge(low, parts) == whole
    generic = merge_verify_results([(a, verdict(a, b)) for a, b in _shards(5, [2])])
    assert generic["first_mismatch"]["sample"] == 1 and generic["mismatched_samples"] == 3


def test_xylo_merge_names_the_mismatch_verify_names(arts):
    """XyloSim's order: the earliest step, then sample, then quantity."""
    import copy

    from adacal.artifact import load_artifact
    from adacal.backends.xylo.verify import compare, merge
    from adacal.runtime_sim import xylo_sim

    art, data = arts["xylo"]
    low = load_artifact(art).lowering.low
    with np.load(data) as f:
        x = f["x"][:6]
    ours = xylo_sim.simulate(low.spec, low.encode(x), record_isyn=False)
    ref = copy.deepcopy(ours)
    ref.spikes[1, 9, 3] += 1  # sample 1, step 10
    ref.vmem_out[4, 2, 0] += 1  # sample 4, step 3: the earliest step
    ref.spikes[5, 2, 2] += 1  # sample 5, step 3

    def verdict(a, b):
        sl = copy.copy(ours), copy.copy(ref)
        for r, src in zip(sl, (ours, ref)):
            for name in ("spikes", "vmem_out", "spikes_out"):
                setattr(r, name, getattr(src, name)[a:b])
        first, bad = compare(low, *sl)
        return {"samples": b - a, "mismatched_samples": int(bad.sum()), "first_mismatch": first}

    whole = verdict(0, 6)
    assert (whole["first_mismatch"]["sample"], whole["first_mismatch"]["step"]) == (4, 3)
    for cuts in ([2], [3, 5], [1, 2, 3, 4, 5]):
        assert merge(low, [(a, verdict(a, b)) for a, b in _shards(6, cuts)]) == whole


def test_shards_cover_the_samples_in_order():
    from adacal.distribute import plan_shards
    for n, workers, min_size in ((10_000, 2, 64), (5, 2, 2), (1, 4, 1), (450, 3, 64), (7, 16, 1)):
        shards = plan_shards(n, workers, min_size=min_size)
        assert [s.start for s in shards] == [0] + [s.stop for s in shards[:-1]] and shards[-1].stop == n
        assert [s.index for s in shards] == list(range(len(shards)))
        assert max(s.size for s in shards) - min(s.size for s in shards) <= 1
        assert len(shards) == 1 or min(s.size for s in shards) >= min_size
