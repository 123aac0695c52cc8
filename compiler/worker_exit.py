"""A Dask worker plugin for the workers of adacal's own local cluster
(adacal.distribute.dask_client): once a worker has closed, its process ends
without Python's finalization.  With torch and Rockpool loaded that
finalization takes ~0.5 s, and closing the cluster waits for it; after a
Dask worker has closed nothing is left to finalize but the standard streams,
which are flushed first.  The process's exit status is then 0, which the
nanny, closing, does not read.  A worker that dies or is killed is not
concerned.

Its own module: a worker plugin must be a distributed.WorkerPlugin, and
adacal imports distributed only when a run uses workers."""
from __future__ import annotations

import atexit
import os
import sys

from distributed import WorkerPlugin


class QuickExit(WorkerPlugin):
    name = "adacal-quick-exit"

    def teardown(self, worker) -> None:
        # Worker.close removes its plugins, calling this (distributed/worker.py, Worker.plugin_remove);
        # registered last, the handler runs first when the process exits
        atexit.register(_exit_now)


def _exit_now() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed stream: nothing to flush
            pass
    os._exit(0)
