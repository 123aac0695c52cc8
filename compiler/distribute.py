"""Work sharded over samples on Dask (`--workers N`, `--cluster ADDRESS`;
workers= / cluster= in the Python API):

* `simulate` and `verify` of an artifact (simulate, verify);
* the float SNN's evaluation in `convert` / `compile-*` (evaluate) and the
  target's bit-accurate evaluation in `compile-*` (target_evaluation);
* the candidate evaluations of both searches (trial_runner).

* The samples are cut into contiguous shards (plan_shards), a few per worker;
  each shard is one Dask task.
* simulate / verify: a task gets the artifact's directory path, never the
  network: each worker process loads the artifact once and keeps it (and the
  data file, when the data came as a path: each worker reads it once and
  takes its slices; arrays given in Python travel with their shard).  The
  compile-time work has no artifact yet: the conversion (and lowering) is
  scattered to every worker once.  torch runs one thread per worker.
* The results come back in shard order and the target merges them
  (Lowering.simulate_merge, Target.verify_merge) into exactly what the
  in-process run gives; `simulate`'s output error against the ANN is computed
  here, in the calling process, on all samples at once, as in-process.
* A shard that fails (its worker died: Dask's KilledWorker, or the task
  raised) is submitted once more; a second failure is one AdacalError naming
  the shard and its samples, and nothing is returned.  An AdacalError raised
  by a task (bad input) is raised as it is.
* Progress: one task of N samples that advances as shards complete.
* The local cluster's worker processes end without Python's finalization
  once their Dask worker has closed (adacal.worker_exit: ~0.5 s saved at
  every close with torch and Rockpool loaded).
* Lava starts processes of its own, which a daemonic process may not have:
  the local cluster's worker processes are started non-daemonic
  (`distributed.worker.daemon: False`).  Workers started by `dask worker`
  need the same: `DASK_DISTRIBUTED__WORKER__DAEMON=False dask worker ...`.

dask / distributed are imported only here, and only when a run asks for
workers > 1 or a cluster (the CLI's import time is unchanged).

Test-only hook: with ADACAL_TEST_WORKER_EXIT="<shard>" the worker running
that shard exits (os._exit(1)) on the shard's first attempt, with
"<shard>:always" on every attempt.
"""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adacal.errors import AdacalError
from adacal.progress import progress_task

ENV_TEST_EXIT = "ADACAL_TEST_WORKER_EXIT"
#: shards per worker: enough to balance the load and show progress
SHARDS_PER_WORKER = 4
#: the fewest samples a simulation shard holds (the simulators are vectorised over samples)
MIN_SIMULATE_SHARD = 64
#: the fewest samples a verification shard holds (each starts the vendor's simulator once: Lava takes seconds)
MIN_VERIFY_SHARD = 2
#: a search shard's fewest calibration samples
MIN_TRIAL_SHARD = 16
#: seconds to wait for the first worker of a cluster given
CONNECT_TIMEOUT = 30

#: dask configuration while adacal's cluster runs
DASK_CONFIG = {
    # Lava's runtime starts processes: a daemonic worker process may not have children
    "distributed.worker.daemon": False,
    # a worker death fails the task it ran at once: adacal resubmits it itself, once
    "distributed.scheduler.allowed-failures": 0,
    # one task per worker thread at a time, so a worker's death fails only the shard it ran
    "distributed.scheduler.worker-saturation": 1.0,
    # no statistical profiler sampling the task's stack every 10 ms (it competes for the GIL with the
    # simulators' Python loops)
    "distributed.worker.profile.enabled": False,
}


@dataclass(frozen=True)
class Shard:
    """Samples start .. stop - 1, the index-th shard."""
    index: int
    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start

    def describe(self) -> str:
        last = self.stop - 1
        return (f"shard {self.index} (sample {self.start})" if last == self.start
                else f"shard {self.index} (samples {self.start}-{last})")


def plan_shards(n: int, workers: int, per_worker: int = SHARDS_PER_WORKER, min_size: int = 1) -> list[Shard]:
    """Contiguous shards covering 0 .. n - 1: about per_worker per worker,
    each at least min_size samples (but at least one shard), sizes differing
    by at most one."""
    k = max(1, min(workers * per_worker, n // max(min_size, 1), n))
    bounds = [i * n // k for i in range(k + 1)]
    return [Shard(i, bounds[i], bounds[i + 1]) for i in range(k)]


def plan_batch_shards(n: int, batch: int, workers: int) -> list[Shard]:
    """plan_shards over whole batches of `batch` samples (the last may be
    short): every shard starts at a multiple of batch, so a worker that runs
    its shard batch by batch sees the batches the calling process would."""
    nb = -(-n // max(batch, 1))
    return [Shard(s.index, s.start * batch, min(s.stop * batch, n)) for s in plan_shards(nb, workers)]


def check_engine(workers, cluster) -> int:
    """workers as an int >= 1; an AdacalError for a bad value or for both
    workers > 1 and a cluster."""
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)):
        raise AdacalError(f"--workers must be an integer >= 1, got {workers!r}")
    if workers < 1:
        raise AdacalError(f"--workers must be >= 1, got {workers}")
    if cluster is not None and workers != 1:
        raise AdacalError("--workers and --cluster exclude each other: --workers N starts a local cluster of N "
                          "workers, --cluster uses the workers of a running one")
    if isinstance(cluster, str) and not cluster.strip():
        raise AdacalError("--cluster needs a scheduler address such as tcp://host:8786")
    return int(workers)


def data_source(data):
    """What a task needs to find its samples: the data file's absolute path
    (each worker reads it once), or None (arrays: the shards travel)."""
    if isinstance(data, (str, os.PathLike)):
        return str(Path(data).resolve())
    return None


# ---------------------------------------------------------------------------
# the calling process
# ---------------------------------------------------------------------------
@contextmanager
def dask_client(workers: int, cluster=None, log=None):
    """(client, workers, threads): a local cluster of `workers` processes (one
    thread each) started and stopped here, or the cluster given: a scheduler
    address, a distributed.Client (used as it is) or a cluster object (a
    LocalCluster, dask-jobqueue's SLURMCluster, ...)."""
    import logging
    from contextlib import ExitStack

    import dask

    with ExitStack() as stack:
        stack.enter_context(dask.config.set(DASK_CONFIG))  # read when workers (re)start: kept while the cluster runs
        from distributed import Client, LocalCluster
        from distributed.utils import silence_logging_cmgr

        stack.enter_context(silence_logging_cmgr(logging.CRITICAL))  # a dead worker is adacal's to report, once
        if cluster is None:
            # a worker process the nanny restarts after a death configures its logging when it imports
            # distributed, from the environment: keep it as quiet as the first ones
            stack.enter_context(_environ(DASK_LOGGING__DISTRIBUTED="critical"))
            if log:
                log(f"starting a local Dask cluster of {workers} worker processes ...")
            try:
                own = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                                   silence_logs=logging.CRITICAL)
            except (OSError, RuntimeError, TimeoutError) as e:
                raise AdacalError(f"could not start a local Dask cluster of {workers} workers ({_first_line(e)}); "
                                  "from a script, call adacal under `if __name__ == \"__main__\":` (the worker "
                                  "processes import the main module)") from None
            stack.callback(_close, own)
            client = Client(own, set_as_default=False)
            stack.callback(_close, client)
            _quick_exit(client)
            stack.callback(_settle, client, workers)  # runs first: let restarting workers finish starting
        elif isinstance(cluster, Client):
            client = cluster
        else:
            client = _connect(Client, cluster, log)
            stack.callback(_close, client)
        yield (client, *_wait_for_workers(client, cluster))


def _quick_exit(client) -> None:
    """Our own workers' processes end at once when closed (adacal.worker_exit);
    a failure to arrange it only costs time at the close."""
    from adacal.worker_exit import QuickExit
    try:
        client.register_plugin(QuickExit())
    except Exception:  # noqa: BLE001 - an optimisation: the run goes ahead without it
        pass


@contextmanager
def _environ(**values):
    """os.environ with values set inside the block (restored after)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _settle(client, workers: int, timeout: float = 20.0) -> None:
    """Before closing our own cluster: wait (a little) until the nanny has
    restarted any worker that died, so that no worker process is closed half
    started (it then prints a traceback of its own on stderr)."""
    try:
        client.wait_for_workers(workers, timeout=timeout)
    except Exception:  # noqa: BLE001 - closing goes ahead in any case
        pass


def _close(obj) -> None:
    """Close a client or cluster of ours; a failure to close (a slow worker
    under load) must not hide the run's answer or its error."""
    try:
        obj.close()
    except Exception:  # noqa: BLE001 - the worker processes end with this process in any case
        pass


def _connect(Client, cluster, log):
    what = cluster if isinstance(cluster, str) else type(cluster).__name__
    if log:
        log(f"connecting to the Dask cluster at {what} ...")
    try:  # waits distributed.comm.timeouts.connect (DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT; 30 s)
        return Client(cluster, set_as_default=False)
    except (OSError, TimeoutError, ValueError, TypeError) as e:
        raise AdacalError(f"cannot connect to the Dask scheduler at {what} ({_first_line(e)})") from None


def _wait_for_workers(client, cluster) -> tuple[int, int]:
    """The cluster's workers and worker threads (at least one worker waited for)."""
    if not client.nthreads():
        try:
            client.wait_for_workers(1, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as e:
            raise AdacalError(f"the Dask cluster at {cluster} has no workers "
                              f"(waited {CONNECT_TIMEOUT} s: {_first_line(e)})") from None
    threads = client.nthreads()
    return len(threads), max(sum(threads.values()), 1)


def run_shards(client, fn, shards: list[Shard], args_of, advance, what: str, slots: int) -> list:
    """fn(*args_of(shard), shard, attempt) for every shard on the cluster; the
    results in shard order.  At most `slots` shards run at a time (one per
    worker thread: a worker's death then fails only the shard it ran), the
    next submitted as one completes; advance(samples) as each completes.  A
    failed shard is submitted once more; its second failure cancels the rest
    and raises one AdacalError naming it."""
    import warnings
    from collections import deque

    from distributed import as_completed

    pending = {}
    todo = deque(shards)
    done = as_completed([], loop=client.loop)

    def submit(sh: Shard, attempt: int) -> None:
        with warnings.catch_warnings():  # arrays given in Python travel with their shard: no size warning
            warnings.simplefilter("ignore")
            f = client.submit(fn, *args_of(sh), sh, attempt, pure=False,
                              key=f"adacal-{what}-{sh.index}-{attempt}-{os.urandom(6).hex()}")
        pending[f.key] = (f, sh, attempt)
        done.add(f)

    def fill() -> None:
        while todo and len(pending) < max(slots, 1):
            submit(todo.popleft(), 0)

    results: list = [None] * len(shards)
    fill()
    try:
        for f in done:
            _, sh, attempt = pending.pop(f.key)
            if f.status == "finished":
                results[sh.index] = f.result()
                f.release()
                advance(sh.size)
                fill()
                continue
            exc = _exception(f)
            if isinstance(exc, AdacalError):
                raise exc
            if attempt == 0:
                submit(sh, 1)
                continue
            raise AdacalError(f"{what}: {sh.describe()} failed twice ({_reason(exc)}); no result")
    finally:
        for f, _, _ in pending.values():
            f.cancel()
    return results


def _exception(f):
    try:
        return f.exception()
    except Exception as e:  # noqa: BLE001 - a cancelled future raises instead of returning its exception
        return e


def _reason(exc) -> str:
    if type(exc).__name__ == "KilledWorker":
        return "its worker process died while running it"
    return f"{type(exc).__name__}: {_first_line(exc)}"


def _first_line(e) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def task_args(art, data, x, total: int):
    """args_of(shard) for simulate_shard / verify_shard: the artifact's path,
    the data file's path and its sample count as read here (x: None), or the
    shard's arrays."""
    source = data_source(data)
    path = str(Path(art.path).resolve())
    if source is not None:
        return lambda sh: (path, source, None, total)
    return lambda sh: (path, None, _rows(x, sh.start, sh.stop), total)


def _rows(x, start: int, stop: int) -> np.ndarray:
    """Samples start .. stop - 1 of an array or adacal.data Samples."""
    return x.rows(start, stop) if hasattr(x, "rows") else np.asarray(x[start:stop])


def simulate(art, data, x, y, adaptive: bool, log, workers: int, cluster) -> dict:
    """Artifact.simulate's answer, the integer / Xylo simulation sharded over
    the cluster's workers; the output error against the ANN is computed here
    while the workers run."""
    from concurrent.futures import ThreadPoolExecutor

    t0 = time.perf_counter()
    with dask_client(workers, cluster, log) as (client, n, slots):
        shards = plan_shards(len(x), slots, min_size=MIN_SIMULATE_SHARD)
        if log:
            log(f"simulating {len(x)} samples bit-accurately ({art.target}) in {len(shards)} shards on "
                f"{n} Dask workers ...")
        with ThreadPoolExecutor(1) as pool, \
                progress_task(log, "bit-accurate simulation", len(x), "samples") as advance:
            ann = pool.submit(art.ann_outputs, x)  # the ANN beside the workers (its numbers as in-process)
            parts = run_shards(client, simulate_shard, shards, task_args(art, data, x, len(x)), advance,
                               "simulate", slots)
            ann_out = ann.result()
    out = art.lowering.simulate_merge(parts, y, adaptive, art.manifest)
    out["output_error"] = art.output_error_of(out["outputs"], ann_out)
    return {**out, "seconds": time.perf_counter() - t0, **engine_fields("dask", n, len(shards))}


def verify(art, data, x, total: int, log, workers: int, cluster) -> dict:
    """Artifact.verify's answer, the comparison with the vendor's model
    sharded over the cluster's workers and merged by the target.  x: the
    samples to verify, the first of the `total` in data."""
    t0 = time.perf_counter()
    tgt = art.target_object
    with dask_client(workers, cluster, log) as (client, n, slots):
        shards = plan_shards(len(x), slots, min_size=MIN_VERIFY_SHARD)
        if log:
            log(f"verify: {len(x)} samples against {tgt.title}'s reference model in {len(shards)} shards on "
                f"{n} Dask workers ...")
        with progress_task(log, "verification", len(x), "samples") as advance:
            parts = run_shards(client, verify_shard, shards, task_args(art, data, x, total), advance, "verify", slots)
    out = tgt.verify_merge(art.lowering, [(sh.start, r) for sh, r in zip(shards, parts)])
    return {**out, "seconds": time.perf_counter() - t0, **engine_fields("dask", n, len(shards))}


def evaluate(conv, data, log, workers: int, cluster) -> tuple[list, dict]:
    """pipeline.evaluate's per-batch parts (pipeline.evaluate_part on every
    batch of conv.options.batch_size samples, in order) and the engine
    fields ("engine": "dask", "workers": the cluster's), computed on the
    cluster's workers: the conversion travels to every worker once
    (scattered), the samples as a path (each worker opens the file or
    directory) or, given as arrays, with their shard."""
    bs = conv.options.batch_size
    with dask_client(workers, cluster, log) as (client, n, slots):
        shards = plan_batch_shards(len(data), bs, slots)
        if log:
            log(f"evaluating {len(data)} samples in {len(shards)} shards on {n} Dask workers ...")
        source = data_source(getattr(data, "source", None))
        remote = client.scatter(conv, broadcast=True, hash=False)
        args_of = (lambda sh: (remote, source, None, len(data))) if source is not None else \
            (lambda sh: (remote, None, _rows(data, sh.start, sh.stop), len(data)))
        with progress_task(log, "float SNN evaluation", len(data), "samples") as advance:
            parts = run_shards(client, evaluate_shard, shards, args_of, advance, "evaluate", slots)
    return [p for shard in parts for p in shard], {"engine": "dask", "workers": n}


def target_evaluation(net, conv, x, log, workers: int, cluster) -> list:
    """compile's bit-accurate evaluation on x (Lowering.evaluate_part) on
    the cluster's workers, a part per shard in sample order: the lowering
    and the conversion travel to every worker once."""
    with dask_client(workers, cluster, log) as (client, n, slots):
        shards = plan_shards(len(x), slots, min_size=MIN_SIMULATE_SHARD)
        if log:
            log(f"bit-accurate evaluation of {len(x)} samples in {len(shards)} shards on {n} Dask workers ...")
        remote = client.scatter((net, conv), broadcast=True, hash=False)
        with progress_task(log, "bit-accurate evaluation", len(x), "samples") as advance:
            return run_shards(client, target_shard, shards, lambda sh: (remote, x[sh.start:sh.stop]), advance,
                              "evaluate", slots)


def trial_runner(workers: int, cluster, log=None):
    """A search_trials runner (the searches' `runner`) that shards the
    calibration samples over the cluster's workers: every shard runs every
    trial (no pruning: the searches prune from the joined table, with the
    same result), and the per-sample tables are joined in sample order."""
    def runner(trials, x, ann_out, T: int, progress=None, prune=None):
        from adacal.passes.search_trials import TrialTable, advance_all
        with dask_client(workers, cluster, log) as (client, n, slots):
            shards = plan_shards(len(x), slots, min_size=MIN_TRIAL_SHARD)
            remote = client.scatter(trials, broadcast=True, hash=False)
            args_of = lambda sh: (remote, _rows(x, sh.start, sh.stop), ann_out[sh.start:sh.stop], T)  # noqa: E731
            parts = run_shards(client, trials_shard, shards, args_of, lambda k: None, "search", slots)
        advance_all(trials, progress)
        return TrialTable.join(parts)
    return runner


def engine_fields(engine: str, workers: int, shards: int) -> dict:
    """The fields simulate / verify add to their result: how they ran."""
    return {"engine": engine, "workers": workers, "shards": shards}


# ---------------------------------------------------------------------------
# the worker processes
# ---------------------------------------------------------------------------
_ARTIFACTS: dict = {}
_DATA: dict = {}


def _one_thread() -> None:
    import torch
    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)


def _stamp(path: Path):
    st = path.stat()
    return st.st_mtime_ns, st.st_size


def _artifact(path: str):
    """The artifact at path, loaded once per worker process (again when its
    manifest changed: a recompiled artifact)."""
    from adacal.artifact import load_artifact
    from adacal.output import MANIFEST

    _one_thread()
    stamp = _stamp(Path(path) / MANIFEST)
    got = _ARTIFACTS.get(path)
    if got is None or got[0] != stamp:
        got = _ARTIFACTS[path] = (stamp, load_artifact(path))
    return got[1]


def _samples(art, source: str | None, arrays, total: int, sh: Shard) -> np.ndarray:
    """The shard's samples: from the data file (read once per worker process;
    it held `total` samples when the calling process read it) or the arrays
    that came with the task."""
    if source is None:
        return np.asarray(arrays)
    p = Path(source)
    stamp = _stamp(p / "x.npy" if p.is_dir() else p)
    got = _DATA.get(source)
    if got is None or got[0] != stamp:
        _DATA.clear()  # one data file at a time (a directory's x.npy is memory-mapped)
        got = _DATA[source] = (stamp, art._samples(source))
    x = got[1]
    if len(x) != total:
        raise AdacalError(f"data file {source} changed while the workers ran ({total} samples, now {len(x)})")
    return x.rows(sh.start, sh.stop)


def _test_hook(sh: Shard, attempt: int) -> None:
    spec = os.environ.get(ENV_TEST_EXIT, "")
    if not spec:
        return
    index, _, when = spec.partition(":")
    if index.strip() == str(sh.index) and (when == "always" or attempt == 0):
        os._exit(1)  # a worker process dying mid-run (tests only)


def simulate_shard(path: str, source, arrays, total: int, sh: Shard, attempt: int):
    """(worker) Lowering.simulate_part on the shard's samples."""
    _test_hook(sh, attempt)
    art = _artifact(path)
    return art.lowering.simulate_part(_samples(art, source, arrays, total, sh))


def evaluate_shard(conv, source, arrays, total: int, sh: Shard, attempt: int) -> list:
    """(worker) pipeline.evaluate_part on each batch of the shard's samples."""
    from adacal.data import open_data
    from adacal.pipeline import evaluate_part

    _test_hook(sh, attempt)
    _one_thread()
    if source is None:
        x = np.asarray(arrays)
    else:
        data = open_data(source)
        if len(data) != total:
            raise AdacalError(f"data file {source} changed while the workers ran ({total} samples, now {len(data)})")
        x = data.rows(sh.start, sh.stop)
    from adacal.runtime_sim.energy import fanout_maps

    bs, fan = conv.options.batch_size, fanout_maps(conv.snn)
    return [evaluate_part(conv, x[s:s + bs], fan) for s in range(0, len(x), bs)]


def target_shard(net_conv, x, sh: Shard, attempt: int):
    """(worker) Lowering.evaluate_part on the shard's validation samples."""
    _test_hook(sh, attempt)
    _one_thread()
    net, conv = net_conv
    return net.evaluate_part(conv, np.asarray(x))


def trials_shard(trials, x, ann_out, T: int, sh: Shard, attempt: int):
    """(worker) every search trial on the shard's calibration samples."""
    from adacal.passes.search_trials import run

    _test_hook(sh, attempt)
    _one_thread()
    return run(trials, np.asarray(x), np.asarray(ann_out), T)


def verify_shard(path: str, source, arrays, total: int, sh: Shard, attempt: int) -> dict:
    """(worker) the target's verify on the shard's samples."""
    _test_hook(sh, attempt)
    art = _artifact(path)
    x = _samples(art, source, arrays, total, sh)
    try:
        return art.target_object.verify(art.lowering, x, None)
    except Exception as e:
        import multiprocessing
        if isinstance(e, AdacalError) or not multiprocessing.current_process().daemon:
            raise
        raise AdacalError(f"verify failed in a daemonic Dask worker process ({type(e).__name__}: {_first_line(e)}); "
                          "Lava starts processes of its own, which a daemonic process may not: start the workers "
                          "with DASK_DISTRIBUTED__WORKER__DAEMON=False") from None
