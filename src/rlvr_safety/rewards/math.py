"""Math answer verification: extract a completion's final answer and compare it with the gold via math-verify.

math-verify enforces its timeouts with SIGALRM, which only works on the main thread; reward functions run in
trainer threads, evaluation threads and verl workers. So grading runs in a pool of worker processes with
math-verify's own timeout disabled and a per-item wall-clock limit enforced from outside: an item that overruns
scores 0.0 with reason "timeout" and its pool is killed and recreated, so one pathological expression can never
stall training. `workers=0` grades in-process instead (the sequential baseline, and a fallback where processes
cannot be started).
"""

from __future__ import annotations

import atexit
import logging
import math
import multiprocessing
import os
import re
import signal
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Literal

from rlvr_safety.errors import UserError
from rlvr_safety.rewards.base import Reward, RewardVerdict

__all__ = [
    "Extraction",
    "GradeOutcome",
    "MathReward",
    "VerifierPool",
    "clean_answer",
    "example_gold",
    "extract_answer",
    "extract_boxed",
    "gold_answer",
    "grade_answer",
    "several_answers",
]

# `(correct, detail)`; detail is "" or why the comparison could not be made (e.g. "gold unparseable").
GradeFn = Callable[[str, str], tuple[bool, str]]
GoldFormat = Literal["auto", "gsm8k", "latex"]
logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------- extraction

_BOXED_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BOXED_SPACE_RE = re.compile(r"\\boxed +([^\s$]+)")
_HASHES_RE = re.compile(r"####\s*([^\n]*)")
_PHRASE_RE = re.compile(
    r"(?:final\s+answer|the\s+answer)\s*(?:is|:|=)\s*:?\s*(.+?)(?=\.(?:\s|$)|\n|$)",
    re.IGNORECASE,
)
_NUMBER_RE = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:/\d+)?")
_THOUSANDS_RE = re.compile(r"^(-?)(\\?\$)?(\d{1,3}(?:,\d{3})+(?:\.\d+)?)$")
_NUMBER_WITH_UNITS_RE = re.compile(r"^(-?(?:\\?\$)?\s*\d[\d,]*(?:\.\d+)?)\s+[A-Za-z][A-Za-z\s.'/-]*$")
_INLINE_MATH_RE = re.compile(r"\$([^$]+)\$")
# Several answers offered as one: math-verify grades only the last alternative of `36 \lor 37`, the last row of
# `\begin{cases} 36 \\ 37 \end{cases}` and the last of `x=36 \quad x=37`, so such an answer is no single answer.
_SEVERAL_ANSWERS_RE = re.compile(
    r"\\(?:lor|vee|land|wedge)(?![A-Za-z])"
    r"|\\text\{\s*(?:or|and)\s*\}"
    r"|\\\\"
    r"|[\d=]\s*\\q?quad\s*[^\\\s][^\\]*?[\d=]"
)


@dataclass(frozen=True)
class Extraction:
    """The final answer found in a completion and how it was found.

    `method` is one of "boxed", "hashes" (`#### n`), "phrase" ("the answer is ..." / "final answer: ..."),
    "last_number" (the fallback: no explicit final answer, so the last number in the text), or "none".
    """

    answer: str | None
    method: str

    @property
    def is_fallback(self) -> bool:
        return self.method == "last_number"


def extract_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` (or `\\fbox{...}`), matching nested braces; None when there is none.

    An unterminated last box (a completion cut off by the length limit) is skipped in favour of an earlier one.
    """
    starts = [m.end() for m in _BOXED_RE.finditer(text)]
    for start in reversed(starts):
        depth = 1
        for i in range(start, len(text)):
            ch = text[i]
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    return text[start:i]
    spaced = _BOXED_SPACE_RE.findall(text)  # `\boxed 5`, valid LaTeX for a single token
    return spaced[-1] if spaced else None


def clean_answer(answer: str) -> str:
    """Normalise surface noise that math-verify does not: markdown emphasis, trailing punctuation, inline `$`,
    thousands separators, and unit words after a bare number ("18 dollars" -> "18")."""
    s = answer.strip()
    for _ in range(2):
        s = s.strip().strip("*_`").strip()
        math_span = _INLINE_MATH_RE.search(s)
        if math_span and s.startswith("$"):
            s = math_span.group(1).strip()
        s = s.rstrip(".,;:!").strip()
    units = _NUMBER_WITH_UNITS_RE.match(s)
    if units:
        s = units.group(1).strip()
    thousands = _THOUSANDS_RE.match(s)
    if thousands:
        s = thousands.group(1) + (thousands.group(2) or "") + thousands.group(3).replace(",", "")
    return s


def extract_answer(text: str) -> Extraction:
    """Find the final answer: last `\\boxed{}`, else last `#### n`, else last "the answer is ..." / "final
    answer: ...", else (explicit fallback, reported as method "last_number") the last number in the text."""
    boxed = extract_boxed(text)
    if boxed is not None and boxed.strip():
        return Extraction(clean_answer(boxed), "boxed")
    hashes = [m.group(1) for m in _HASHES_RE.finditer(text) if m.group(1).strip()]
    if hashes:
        return Extraction(clean_answer(hashes[-1]), "hashes")
    phrases = [m.group(1) for m in _PHRASE_RE.finditer(text) if clean_answer(m.group(1))]
    if phrases:
        return Extraction(clean_answer(phrases[-1]), "phrase")
    numbers = _NUMBER_RE.findall(text)
    if numbers:
        return Extraction(clean_answer(numbers[-1]), "last_number")
    return Extraction(None, "none")


def several_answers(answer: str) -> bool:
    """Does the answer offer alternatives (or, and, stacked rows, quad-separated values) instead of one value?"""
    return _SEVERAL_ANSWERS_RE.search(answer) is not None


def gold_answer(value: Any, gold_format: GoldFormat = "auto") -> str:
    """The gold answer as a string, from a bare answer, a GSM8K rationale (`... #### 1,000` -> "1000"), or a
    MATH solution (last `\\boxed{}`). "gsm8k" insists on GSM8K conventions (commas dropped); "latex" keeps
    the text verbatim apart from the boxed unwrapping."""
    if isinstance(value, bool) or value is None:
        raise UserError(f"gold answer must be a number or string, got {value!r}")
    if isinstance(value, int | float):
        return str(int(value)) if float(value).is_integer() else str(value)
    text = str(value)
    if gold_format != "latex" and "####" in text:
        text = text.rsplit("####", 1)[1].strip()
    elif "\\boxed" in text or "\\fbox" in text:
        text = extract_boxed(text) or text
    text = clean_answer(text)
    if gold_format == "gsm8k":
        text = text.replace(",", "")
    if not text:
        raise UserError(f"empty gold answer in {value!r}")
    return text


def example_gold(example: Mapping[str, Any]) -> Any:
    """The raw gold value of an example, from the first of gold / answer / solution / ground_truth present."""
    for key in ("gold", "answer", "solution", "ground_truth"):
        if key in example and example[key] is not None:
            return example[key]
    raise UserError(
        f"example has no gold answer: expected a 'gold', 'answer' or 'solution' field, got {sorted(example)}"
    )


# ---------------------------------------------------------------------------------------------- grading


def grade_answer(gold: str, pred: str, timeout: int | None = None) -> tuple[bool, str]:
    """Compare two extracted answers with math-verify (numbers, fractions, LaTeX, intervals, sets).

    Both sides are wrapped in `\\boxed{}` so math-verify reads them as LaTeX answers. `timeout` is passed to
    math-verify's own SIGALRM timeout: only usable on the main thread; pool workers pass None.
    """
    from math_verify import parse, verify

    wrap = "\\boxed{{{}}}"
    parsed_gold = parse(wrap.format(gold), parsing_timeout=timeout)  # type: ignore[arg-type]
    if not parsed_gold:
        return False, "gold unparseable"
    parsed_pred = parse(wrap.format(pred), parsing_timeout=timeout)  # type: ignore[arg-type]
    if not parsed_pred:
        return False, "answer unparseable"
    return bool(verify(parsed_gold, parsed_pred, timeout_seconds=timeout)), ""


@dataclass(frozen=True)
class GradeOutcome:
    """One pool result: `status` is "ok", "timeout" or "error" (`detail` says which error)."""

    correct: bool
    status: str
    detail: str = ""


_WARMUP_PAIRS = (
    ("1", "2"),
    (r"\frac{1}{2}", "0.5"),
    ("[1,2)", r"\{1\}"),
    ("x^2+1", r"\sqrt{3}"),
    ("(1,2)", "1,2"),
)


_STARTS: Any = None  # in a worker: the pool's shared array of per-slot start times


def _init_worker(barrier: Any, starts: Any) -> None:
    """Import and warm up math-verify before the first item (so that never counts against a time limit), mute its
    "timeout disabled" warning, leave Ctrl-C to the parent, then wait until every worker is ready."""
    global _STARTS
    _STARTS = starts
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import math_verify  # noqa: F401

    logging.getLogger("math_verify").setLevel(logging.ERROR)
    for gold, pred in _WARMUP_PAIRS:  # math-verify builds its parsers and regexes lazily, ~0.5 s in all
        try:
            grade_answer(gold, pred)
        except Exception:  # noqa: BLE001 - warming up only
            pass
    try:
        barrier.wait(timeout=120)
    except threading.BrokenBarrierError:  # a sibling failed to start; the pool will report it
        pass


def _ready() -> int:
    return os.getpid()


def _run_item(fn: GradeFn, slot: int, gold: str, pred: str) -> tuple[bool, str]:
    # CLOCK_MONOTONIC is system-wide on Linux and macOS, so the parent can compare it with its own clock.
    _STARTS[slot] = time.monotonic()
    return fn(gold, pred)


_LIVE_POOLS: weakref.WeakSet[VerifierPool] = weakref.WeakSet()


class VerifierPool:
    """Worker processes that grade `(gold, pred)` pairs with a per-item wall-clock limit.

    A batch is queued to the executor as a whole (up to `window` items in flight, 4 per worker by default, so
    workers never wait for the parent). Each item's clock starts when a worker picks it up: the worker stamps
    the start time into a shared array slot that the dispatcher watches. When an item overruns, the whole executor is killed (a worker stuck inside sympy cannot be interrupted)
    and recreated; the other in-flight items are resubmitted. `worker_fn` must be picklable (a module-level
    function); tests inject a slow one. Safe to use from any thread; batches are serialised by a lock.
    """

    def __init__(
        self,
        workers: int,
        timeout: float = 5.0,
        worker_fn: GradeFn = grade_answer,
        start_method: str = "spawn",
        startup_timeout: float = 120.0,
        window: int | None = None,
    ) -> None:
        if workers < 1:
            raise UserError(f"a verifier pool needs at least one worker, got {workers}")
        if timeout <= 0:
            raise UserError(f"timeout must be positive, got {timeout}")
        self.workers = workers
        self.timeout = timeout
        self.worker_fn = worker_fn
        self.start_method = start_method
        self.startup_timeout = startup_timeout
        self.window = max(workers, window or 4 * workers)
        self.restarts = 0
        self.in_process = False  # set when workers cannot start: grading falls back to this process
        self._executor: ProcessPoolExecutor | None = None
        self._starts: Any = None
        self._lock = threading.Lock()
        _LIVE_POOLS.add(self)

    def _start(self) -> ProcessPoolExecutor:
        ctx = multiprocessing.get_context(self.start_method)
        barrier = ctx.Barrier(self.workers)
        starts = ctx.Array("d", self.window, lock=False)  # one writer per slot at a time: no lock needed
        executor = ProcessPoolExecutor(
            max_workers=self.workers, mp_context=ctx, initializer=_init_worker, initargs=(barrier, starts)
        )
        # One task per worker forces all processes to spawn; the barrier makes them all finish importing first.
        ready = [executor.submit(_ready) for _ in range(self.workers)]
        done, pending = wait(ready, timeout=self.startup_timeout)
        failed = next((f.exception() for f in done if f.exception() is not None), None)
        if pending or failed is not None:
            self._kill(executor)
            why = (
                f"crashed ({type(failed).__name__})"
                if failed
                else f"not ready in {self.startup_timeout:.0f}s"
            )
            raise RuntimeError(f"math verifier workers failed to start: {why}")
        self._executor, self._starts = executor, starts
        return executor

    @staticmethod
    def _kill(executor: ProcessPoolExecutor) -> None:
        # The executor offers no way to stop a running task; its worker processes (a private attribute) must go.
        procs = list((getattr(executor, "_processes", None) or {}).values())
        for proc in procs:
            if proc.is_alive():
                proc.kill()
        executor.shutdown(wait=False, cancel_futures=True)
        for proc in procs:
            proc.join(timeout=5)

    def _restart(self) -> ProcessPoolExecutor:
        if self._executor is not None:
            self._kill(self._executor)
            self._executor = None
        self.restarts += 1
        return self._start()

    def grade(self, pairs: Sequence[tuple[str, str]]) -> list[GradeOutcome]:
        """Grade all pairs; never raises for a bad item (timeouts and worker crashes become outcomes)."""
        if not pairs:
            return []
        with self._lock:
            if self._executor is None and not self.in_process:
                try:
                    self._start()
                except RuntimeError as exc:
                    # Typically a `__main__` that spawn cannot re-import (stdin, an unguarded script).
                    logger.warning(
                        "%s; grading in-process instead, without per-item timeouts off the main "
                        "thread (guard the entry script with `if __name__ == '__main__':`)",
                        exc,
                    )
                    self.in_process = True
            if self.in_process:
                return [_grade_in_process(self.worker_fn, g, p, self.timeout) for g, p in pairs]
            try:
                return self._grade(pairs)
            except BaseException:
                # Interrupted mid-batch (KeyboardInterrupt, ...): never leave a busy worker behind.
                if self._executor is not None:
                    self._kill(self._executor)
                    self._executor = None
                raise

    def _grade(self, pairs: Sequence[tuple[str, str]]) -> list[GradeOutcome]:
        executor = self._executor or self._start()
        results: list[GradeOutcome | None] = [None] * len(pairs)
        crashes = [0] * len(pairs)
        queue = deque(range(len(pairs)))
        free_slots = list(range(self.window))
        inflight: dict[Future[tuple[bool, str]], tuple[int, int]] = {}  # future -> (item, slot)
        # Between wake-ups an item may start unseen; polling bounds how late its overrun is noticed.
        poll = max(0.01, self.timeout / 10)

        while queue or inflight:
            starts = self._starts
            while queue and free_slots:
                index, slot = queue.popleft(), free_slots.pop()
                starts[slot] = 0.0  # not started
                inflight[executor.submit(_run_item, self.worker_fn, slot, *pairs[index])] = (index, slot)
            started = [starts[slot] for _, slot in inflight.values() if starts[slot] > 0.0]
            wait_s = min([poll] + [t0 + self.timeout - time.monotonic() for t0 in started])
            done, _ = wait(list(inflight), timeout=max(0.0, wait_s), return_when=FIRST_COMPLETED)
            broken = False
            for fut in done:
                index, slot = inflight.pop(fut)
                free_slots.append(slot)
                exc = fut.exception()
                if exc is None:
                    correct, detail = fut.result()
                    results[index] = GradeOutcome(bool(correct), "ok", detail)
                elif isinstance(exc, BrokenProcessPool):
                    broken = True
                    crashes[index] += 1
                    if crashes[index] >= 2:
                        results[index] = GradeOutcome(False, "error", "verifier worker crashed")
                    else:
                        queue.append(index)
                else:
                    results[index] = GradeOutcome(False, "error", f"{type(exc).__name__}: {exc}")
            now = time.monotonic()
            expired = [
                fut
                for fut, (_, slot) in inflight.items()
                if 0.0 < starts[slot] <= now - self.timeout and not fut.done()
            ]
            for fut in expired:
                index, slot = inflight.pop(fut)
                free_slots.append(slot)
                results[index] = GradeOutcome(False, "timeout")
            if expired or broken:
                # Everything else in flight was on the killed executor: queue it again, in order, at the front.
                queue.extendleft(sorted((index for index, _ in inflight.values()), reverse=True))
                free_slots.extend(slot for _, slot in inflight.values())
                inflight.clear()
                executor = self._restart()
        return [r if r is not None else GradeOutcome(False, "error", "not graded") for r in results]

    def close(self) -> None:
        """Stop the workers (idempotent). A pool that is used again after closing restarts itself."""
        with self._lock:
            if self._executor is not None:
                self._executor.shutdown(wait=True, cancel_futures=True)
                self._executor = None

    def __enter__(self) -> VerifierPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@atexit.register
def _close_live_pools() -> None:
    for pool in list(_LIVE_POOLS):
        try:
            pool.close()
        except Exception:  # noqa: BLE001 - best effort at interpreter exit
            pass


def _grade_in_process(fn: GradeFn, gold: str, pred: str, timeout: float) -> GradeOutcome:
    """Sequential path. math-verify's SIGALRM timeout is used on the main thread; elsewhere there is none."""
    on_main = threading.current_thread() is threading.main_thread()
    try:
        if fn is grade_answer:
            correct, detail = grade_answer(gold, pred, max(1, math.ceil(timeout)) if on_main else None)
        else:
            correct, detail = fn(gold, pred)
    except Exception as exc:  # noqa: BLE001 - a bad item must not fail the batch
        return GradeOutcome(False, "error", f"{type(exc).__name__}: {exc}")
    return GradeOutcome(bool(correct), "ok", detail)


# ---------------------------------------------------------------------------------------------- reward


def _default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


class MathReward(Reward):
    """1.0 when the completion's final answer equals the gold under math-verify, else 0.0.

    The gold comes from `example["gold"]` (or "answer" / "solution", as TRL datasets name it) and may be a bare
    answer, a GSM8K rationale ending `#### n`, or a MATH solution with `\\boxed{}`. `workers=None` picks
    min(4, cpus); `workers=0` grades in-process (no process pool; timeouts only on the main thread).
    Use as a context manager, or call `close()`, to stop the workers early; they are also stopped at exit.
    """

    name = "math"

    def __init__(
        self,
        workers: int | None = None,
        timeout: float = 5.0,
        gold_format: GoldFormat = "auto",
        worker_fn: GradeFn = grade_answer,
        start_method: str = "spawn",
        name: str | None = None,
    ) -> None:
        if gold_format not in ("auto", "gsm8k", "latex"):
            raise UserError(f"gold_format must be one of auto, gsm8k, latex; got {gold_format!r}")
        self.workers = _default_workers() if workers is None else workers
        if self.workers < 0:
            raise UserError(f"workers must be >= 0, got {self.workers}")
        self.timeout = timeout
        self.gold_format: GoldFormat = gold_format
        self.worker_fn = worker_fn
        if name is not None:
            self.name = name
        self._pool = (
            VerifierPool(self.workers, timeout, worker_fn, start_method) if self.workers > 0 else None
        )

    @property
    def pool(self) -> VerifierPool | None:
        return self._pool

    def score(self, example: Mapping[str, Any], completion: str) -> RewardVerdict:
        return self.score_batch([example], [completion])[0]

    def score_batch(self, examples: Sequence[Mapping[str, Any]], completions: Sequence[str]) -> list[RewardVerdict]:
        """Extract every answer here, then send all comparisons to the pool in one batch."""
        if len(examples) != len(completions):
            raise ValueError(f"{len(examples)} examples but {len(completions)} completions")
        verdicts: list[RewardVerdict | None] = [None] * len(completions)
        todo: list[tuple[int, Extraction]] = []
        pairs: list[tuple[str, str]] = []
        for i, (example, completion) in enumerate(zip(examples, completions, strict=True)):
            gold = gold_answer(example_gold(example), self.gold_format)
            found = extract_answer(completion)
            if found.answer is None:
                verdicts[i] = RewardVerdict(0.0, None, "no answer found")
                continue
            if several_answers(found.answer) and not several_answers(gold):
                verdicts[i] = RewardVerdict(0.0, found.answer, f"several answers offered as one ({found.method})")
                continue
            todo.append((i, found))
            pairs.append((gold, found.answer))
        if self._pool is not None:
            outcomes = self._pool.grade(pairs)
        else:
            outcomes = [_grade_in_process(self.worker_fn, g, p, self.timeout) for g, p in pairs]
        for (i, found), outcome in zip(todo, outcomes, strict=True):
            verdicts[i] = _verdict(found, outcome)
        return [v for v in verdicts if v is not None]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()

    def __enter__(self) -> MathReward:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _verdict(found: Extraction, outcome: GradeOutcome) -> RewardVerdict:
    if outcome.status == "timeout":
        return RewardVerdict(0.0, found.answer, "timeout")
    if outcome.status == "error":
        return RewardVerdict(0.0, found.answer, f"error: {outcome.detail}")
    reason = f"{'correct' if outcome.correct else 'wrong'} ({found.method})"
    if found.is_fallback:
        reason += "; fallback: no explicit final answer, graded the last number"
    if outcome.detail:
        reason += f"; {outcome.detail}"
    return RewardVerdict(1.0 if outcome.correct else 0.0, found.answer, reason)
