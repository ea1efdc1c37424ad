"""The study's terminal: one live display (stage k of n, what runs, elapsed time per stage, a bar with an ETA for
long loops), and library output kept off it.

Without --verbose, everything the libraries print while the study runs goes to OUT/study.log instead of the
terminal: Python warnings (FutureWarning, ...), transformers/TRL/datasets logging and their progress bars
("Loading weights", "Tokenizing train dataset"), the trainer's per-step log dicts, and anything else written to
stdout/stderr. With --verbose it goes to both. Our own messages (errors, the final table) are printed after the
block, on the real terminal.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

LOG_NAME = "study.log"
_LIBRARY_LOGGERS = ("transformers", "trl", "peft", "accelerate", "datasets", "huggingface_hub", "torch")


class _Tee:
    """A text stream writing to several streams (--verbose: the terminal and the log)."""

    def __init__(self, *streams: IO[str]) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for s in self.streams:
            s.write(text)
        return len(text)

    def flush(self) -> None:
        for s in self.streams:
            s.flush()

    def isatty(self) -> bool:
        return False


@contextlib.contextmanager
def library_output(out: Path, verbose: bool = False) -> Iterator[Console]:
    """Route library output to OUT/study.log (and the terminal too when `verbose`); yield the terminal console the
    study's display writes to. Everything is restored on exit."""
    out.mkdir(parents=True, exist_ok=True)
    terminal = sys.stderr
    console = Console(file=terminal, markup=False, highlight=False)
    log_file = (out / LOG_NAME).open("a", encoding="utf-8", buffering=1)
    log_file.write(f"\n===== study started {time.strftime('%Y-%m-%d %H:%M:%S')} =====\n")
    handler = logging.StreamHandler(log_file)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    lib_levels = {name: logging.getLogger(name).level for name in _LIBRARY_LOGGERS}
    undo: list[Any] = []
    try:
        logging.captureWarnings(True)
        undo.append(lambda: logging.captureWarnings(False))
        with warnings.catch_warnings():
            warnings.simplefilter("default")  # each distinct warning once, into the log
            undo.extend(_quiet_libraries(verbose))
            sink: IO[str] = log_file if not verbose else _Tee(terminal, log_file)  # type: ignore[assignment]
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                yield console
    finally:
        for fn in reversed(undo):
            with contextlib.suppress(Exception):
                fn()
        for name, level in lib_levels.items():
            logging.getLogger(name).setLevel(level)
        root.removeHandler(handler)
        root.setLevel(old_level)
        log_file.close()


def _quiet_libraries(verbose: bool) -> list[Any]:
    """Send transformers/datasets/hub logging into the root logger (the log file) and hide their bars."""
    undo: list[Any] = []
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_default_handler()
        hf_logging.enable_propagation()
        undo += [hf_logging.enable_default_handler, hf_logging.disable_propagation]
        if not verbose:
            hf_logging.disable_progress_bar()
            undo.append(hf_logging.enable_progress_bar)
    except ImportError:
        pass
    if not verbose:
        with contextlib.suppress(ImportError):
            import datasets

            datasets.disable_progress_bars()
            undo.append(datasets.enable_progress_bars)
        with contextlib.suppress(ImportError):
            from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

            disable_progress_bars()
            undo.append(enable_progress_bars)
    for name in _LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)
    return undo


class StudyDisplay:
    """Stage k of n with what it runs, elapsed time per finished stage, and a bar (done/total, ETA) for the loop
    the current stage reports through rlvr_safety.progress."""

    def __init__(self, console: Console, n_stages: int, log_path: Path | None = None) -> None:
        self.console = console
        self.n = n_stages
        self.log_path = log_path
        self.started = time.time()
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(bar_width=28), MofNCompleteColumn(),
            TextColumn("elapsed"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            console=console, transient=True, redirect_stdout=False, redirect_stderr=False)
        self._stage_task: TaskID | None = None
        self._loop_task: TaskID | None = None
        self._loop_what: str | None = None
        self._stage_t0 = 0.0

    def __enter__(self) -> StudyDisplay:
        self._progress.start()
        self._stage_task = self._progress.add_task("study", total=self.n)
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def skip(self, index: int, stage_id: str) -> None:
        self._advance(index)
        self._line(index, stage_id, "done earlier", "dim")

    def start(self, index: int, stage_id: str, what: str) -> None:
        self._stage_t0 = time.time()
        assert self._stage_task is not None
        self._progress.update(self._stage_task, description=f"stage {index}/{self.n}: {stage_id} ({what})",
                              completed=index - 1)
        self._drop_loop()

    def finish(self, index: int, stage_id: str, note: str = "") -> None:
        self._drop_loop()
        self._advance(index)
        seconds = time.time() - self._stage_t0
        self._line(index, stage_id, f"{seconds:5.0f} s{('  ' + note) if note else ''}", "green")

    def fail(self, index: int, stage_id: str, error: str) -> None:
        self._drop_loop()
        where = f" (details: {self.log_path})" if self.log_path else ""
        self._line(index, stage_id, f"failed after {time.time() - self._stage_t0:.0f} s: {error}{where}", "red")

    def sink(self, what: str, done: int, total: int) -> None:
        """rlvr_safety.progress sink: one bar for the current loop, replaced when another loop starts."""
        if total <= 0:
            return
        if self._loop_task is None or what != self._loop_what:
            self._drop_loop()
            self._loop_task = self._progress.add_task(f"  {what}", total=total)
            self._loop_what = what
        self._progress.update(self._loop_task, completed=min(done, total), total=total)

    def _drop_loop(self) -> None:
        if self._loop_task is not None:
            self._progress.remove_task(self._loop_task)
            self._loop_task, self._loop_what = None, None

    def _advance(self, index: int) -> None:
        if self._stage_task is not None:
            self._progress.update(self._stage_task, completed=index)

    def _line(self, index: int, stage_id: str, status: str, style: str) -> None:
        total = time.time() - self.started
        self._progress.console.print(Text.assemble(
            (f"[{index:>2}/{self.n}] ", "bold cyan"), stage_id, "  ", (status, style), (f"  (study {total:.0f} s)",
                                                                                         "dim")), highlight=False,
            soft_wrap=True)
