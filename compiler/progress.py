"""Progress for the long steps: the threshold and burst-cap / threshold-ratio
searches (layers x candidates), calibration (layer by layer), evaluation and
verification (the adacal simulator, Lava, XyloSim).

Every pipeline function takes an optional ``log``, which may be

* None: silent;
* any plain callable ``log(message)``: one message per call, as always;
* a :class:`Reporter`: such a callable that in addition shows progress for
  ``with log.task(description, total, unit) as advance: ... advance()``.

Code with a loop asks for a task through :func:`progress_task`, which is a
no-op (``advance`` does nothing) unless ``log`` is a Reporter, so a plain
callable or None costs nothing and keeps its old behaviour::

    with progress_task(log, "burst-cap search", total, "layer x cap trials") as advance:
        for ...:
            ...
            advance()

When the CLI shows progress (the rule)
--------------------------------------
* Progress and messages go to **stderr only**; stdout carries the result alone
  (the table, or with ``--json`` exactly one JSON object).
* ``--quiet`` and ``--json`` switch them off: stderr then carries errors only.
* Otherwise, if stderr is a terminal (and TERM is not "dumb"), rich progress
  bars are drawn at the bottom, the messages scroll above them, and each bar
  is cleared when its task ends (the step's own "name: 1.2 s" message stays).
* If stderr is not a terminal (a pipe, a file, a CI log) no control codes are
  written: only plain lines ``adacal: <message>``, and for a task an
  occasional count line, ``adacal: burst-cap search 12/40 layer x cap
  trials``, at most one every :data:`PLAIN_INTERVAL` seconds (so a short task
  adds nothing to the step's start and finish messages), and a closing count
  line if the task wrote any.
* ``ADACAL_PROGRESS`` overrides the detection: ``auto`` (default), ``rich``
  (bars even when stderr is not a terminal: rich's force_terminal), ``plain``
  (the non-terminal behaviour on a terminal too), ``off`` (messages only, no
  task lines or bars).  ``ADACAL_PROGRESS_INTERVAL`` sets the plain interval
  in seconds (0: a line at every step of a task).

Python API users get the same display with ``with Reporter() as log:
adacal.convert(..., log=log)``.
"""
from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager, nullcontext

MODES = ("auto", "rich", "plain", "off")
#: seconds between two count lines of one task in plain mode
PLAIN_INTERVAL = 5.0
ENV_MODE, ENV_INTERVAL = "ADACAL_PROGRESS", "ADACAL_PROGRESS_INTERVAL"


def noop_advance(n: int = 1) -> None:
    """The advance function of a task nobody watches (callers may test
    ``advance is noop_advance`` to skip work done only for progress)."""


def progress_task(log, description: str, total: int | None = None, unit: str = ""):
    """A context manager yielding ``advance(n=1)``: ``log.task(...)`` when
    ``log`` supports tasks (a :class:`Reporter`), otherwise a no-op (``log``
    None or a plain message callable)."""
    task = getattr(log, "task", None)
    if log is None or not callable(task):
        return nullcontext(noop_advance)
    return task(description, total, unit)


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty()) and os.environ.get("TERM", "").lower() not in ("dumb", "unknown")
    except (AttributeError, ValueError, OSError):
        return False


def resolve_mode(mode: str, stream) -> str:
    """'auto' -> 'rich' on a terminal (rich importable), else 'plain'."""
    if mode not in MODES:
        raise ValueError(f"{ENV_MODE} must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "auto":
        mode = "rich" if _is_terminal(stream) else "plain"
    if mode == "rich":
        try:
            import rich.progress  # noqa: F401
        except ImportError:  # pragma: no cover - rich is in requirements/base.txt
            mode = "plain"
    return mode


class Reporter:
    """A ``log`` callable that also shows task progress (see the module doc).

    stream: where everything goes (default: sys.stderr at construction).
    mode: one of MODES; 'auto' picks rich bars on a terminal, plain lines
    otherwise; 'rich' forces the bars.  interval: plain-mode seconds between
    count lines (default PLAIN_INTERVAL).  Use as a context manager, or call
    close() at the end: it stops the rich display (and clears the bars).
    """

    def __init__(self, stream=None, mode: str = "auto", interval: float | None = None, prefix: str = "adacal: "):
        self.stream = sys.stderr if stream is None else stream
        self.forced = mode == "rich"
        self.mode = resolve_mode(mode, self.stream)
        self.interval = PLAIN_INTERVAL if interval is None else max(0.0, float(interval))
        self.prefix = prefix
        self._console = None
        self._progress = None  # rich Progress, started with the first task

    @classmethod
    def from_env(cls, stream=None) -> "Reporter":
        """A reporter configured by ADACAL_PROGRESS / ADACAL_PROGRESS_INTERVAL
        (bad values fall back to the defaults rather than failing a compile)."""
        mode = os.environ.get(ENV_MODE, "auto").strip().lower() or "auto"
        if mode not in MODES:
            mode = "auto"
        try:
            interval = float(os.environ[ENV_INTERVAL]) if os.environ.get(ENV_INTERVAL) else None
        except ValueError:
            interval = None
        return cls(stream, mode, interval)

    # -- messages --------------------------------------------------------
    def __call__(self, message: str) -> None:
        line = f"{self.prefix}{message}"
        if self.mode == "rich":
            from rich.text import Text
            self._rich_console().print(Text(line), soft_wrap=True)
        else:
            self._write(line)

    def _write(self, line: str) -> None:
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken stderr must not fail a compile
            pass

    # -- tasks -----------------------------------------------------------
    def task(self, description: str, total: int | None = None, unit: str = ""):
        """Context manager yielding ``advance(n=1)`` for a task of ``total``
        steps (None: unknown).  On normal exit the task counts as complete
        (a search that prunes candidates finishes early)."""
        if self.mode == "rich":
            return self._rich_task(description, total, unit)
        if self.mode == "plain":
            return self._plain_task(description, total, unit)
        return nullcontext(noop_advance)

    @contextmanager
    def _plain_task(self, description, total, unit):
        t0 = last = time.monotonic()
        state = {"done": 0, "shown": None}

        def line():
            tot = "?" if total is None else total
            return f"{description} {state['done']}/{tot}" + (f" {unit}" if unit else "")

        def advance(n: int = 1) -> None:
            nonlocal last
            state["done"] += n
            now = time.monotonic()
            if now - last >= self.interval:
                last = now
                state["shown"] = state["done"]
                self(line())

        yield advance
        if state["shown"] is not None and state["shown"] != state["done"]:
            self(f"{line()} ({time.monotonic() - t0:.1f} s)")

    @contextmanager
    def _rich_task(self, description, total, unit):
        prog = self._rich_progress()
        tid = prog.add_task(description, total=total, unit=unit)
        prog.refresh()
        done = 0

        def advance(n: int = 1) -> None:
            nonlocal done
            done += n
            prog.advance(tid, n)

        try:
            yield advance
            # complete (a pruned search ends early); draw the full bar once
            prog.update(tid, total=max(done, 1), completed=max(done, 1))
            prog.refresh()
        finally:
            prog.remove_task(tid)

    def _rich_console(self):
        if self._console is None:
            from rich.console import Console
            self._console = Console(file=self.stream, force_terminal=True if self.forced else None,
                                    force_interactive=True if self.forced else None,
                                    markup=False, emoji=False, highlight=False)
        return self._console

    def _rich_progress(self):
        if self._progress is None:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)
            self._progress = Progress(
                TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[unit]}", markup=False), TimeElapsedColumn(), TimeRemainingColumn(),
                console=self._rich_console(), transient=True, redirect_stdout=False,
                redirect_stderr=self.stream is sys.stderr)
            self._progress.start()
        return self._progress

    # -- lifetime --------------------------------------------------------
    def close(self) -> None:
        """Stop the rich display (clearing the bars); messages still work after."""
        if self._progress is not None:
            prog, self._progress = self._progress, None
            prog.stop()

    def __enter__(self) -> "Reporter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
