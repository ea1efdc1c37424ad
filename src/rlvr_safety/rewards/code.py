"""Code reward: run model-written Python against tests in the sandbox, and grade completions with it.

`run_tests` / `run_batch` are the grader side of the sandbox: they start `sandbox.py` (the isolated child,
see its docstring for the isolation layers and the residual risk), feed it the job, read its output with a cap,
enforce the wall-clock limit and turn the verdict channel into a `CodeResult`. `CodeReward` extracts the program
from a completion and grades all-or-nothing (1.0 only when every test passed), because partial credit per
assert rewards special-casing the visible tests.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rlvr_safety.errors import UserError
from rlvr_safety.paths import DATA_DIR_ENV
from rlvr_safety.rewards import sandbox
from rlvr_safety.rewards.base import Reward, RewardVerdict

__all__ = [
    "CodeResult",
    "CodeReward",
    "CodeTask",
    "SandboxCapabilities",
    "SandboxLimits",
    "build_program",
    "example_tests",
    "extract_code",
    "run_batch",
    "run_tests",
    "sandbox_capabilities",
]

Status = Literal["passed", "failed", "timeout", "error", "killed"]
# The launcher enforces `timeout_s` itself (and reaps what it kills); the grader's own clock is a backstop.
_LAUNCH_GRACE_S = 2.0


# ------------------------------------------------------------------------------------------------ sandbox API


@dataclass(frozen=True)
class SandboxLimits:
    """Per-run resource caps; defaults suit HumanEval/MBPP-sized tasks."""

    memory_bytes: int = 1 << 30
    file_bytes: int = 10 << 20
    tmpfs_bytes: int = 64 << 20
    open_files: int = 64
    processes: int = 32
    output_bytes: int = 8192


@dataclass(frozen=True)
class CodeResult:
    """One sandboxed run. `passed` is True only when the harness proved every test ran and passed."""

    passed: bool
    status: Status
    output: str
    duration_s: float
    reason: str = ""
    isolation: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class CodeTask:
    """A program with its tests: a HumanEval `check(candidate)` source, plain test code, or assert strings."""

    program: str
    tests: str | list[str]
    entry_point: str | None = None
    timeout_s: float = 5.0


@dataclass(frozen=True)
class SandboxCapabilities:
    """Which isolation features the kernel and our privileges grant here (probed once per process)."""

    features: frozenset[str]
    errors: tuple[str, ...] = ()

    def __contains__(self, name: object) -> bool:
        return name in self.features


def run_tests(
    program: str,
    tests: str | Sequence[str],
    entry_point: str | None = None,
    timeout_s: float = 5.0,
    *,
    limits: SandboxLimits | None = None,
    guard_returns: bool = True,
) -> CodeResult:
    """Run `program` then `tests` in the sandbox; `timeout_s` bounds the whole run (wall clock).

    `tests` is either source (if it defines `check` and `entry_point` is given, `check(<entry_point>)` is called,
    HumanEval style) or a list of statements such as MBPP's assert strings, run in order. `guard_returns`
    rejects return values of program functions that are not plain data (see module docstring).
    """
    caps = sandbox_capabilities()
    return _run(
        program, tests, entry_point, timeout_s, limits or SandboxLimits(), guard_returns, caps.features
    )


def run_batch(
    items: Iterable[CodeTask | Mapping[str, Any]],
    max_workers: int | None = None,
    *,
    limits: SandboxLimits | None = None,
    guard_returns: bool = True,
) -> list[CodeResult]:
    """Run many tasks with at most `max_workers` sandboxes alive at once (threads launching processes)."""
    tasks = [it if isinstance(it, CodeTask) else CodeTask(**dict(it)) for it in items]
    if not tasks:
        return []
    workers = max(1, min(len(tasks), max_workers or os.cpu_count() or 1))
    sandbox_capabilities()  # probe once before the threads start

    def one(t: CodeTask) -> CodeResult:
        return run_tests(
            t.program, t.tests, t.entry_point, t.timeout_s, limits=limits, guard_returns=guard_returns
        )

    if workers == 1:
        return [one(t) for t in tasks]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sandbox") as pool:
        return list(pool.map(one, tasks))


_caps_lock = threading.Lock()
_caps: SandboxCapabilities | None = None


def sandbox_capabilities(refresh: bool = False) -> SandboxCapabilities:
    """Probe (once) which namespaces, uid switch and rlimits work, by running an empty program."""
    global _caps
    with _caps_lock:
        if _caps is None or refresh:
            wanted = frozenset({*sandbox.NAMESPACES, "uid_switch", "userns"})
            res = _run("pass", [], None, 30.0, SandboxLimits(), False, wanted)
            errors = tuple(line for line in res.reason.split("; ") if line) if not res.passed else ()
            _caps = SandboxCapabilities(res.isolation, errors)
        return _caps


def _run(
    program: str,
    tests: str | Sequence[str],
    entry_point: str | None,
    timeout_s: float,
    limits: SandboxLimits,
    guard_returns: bool,
    features: frozenset[str],
) -> CodeResult:
    start = time.monotonic()
    nonce = secrets.token_hex(16)
    root = os.geteuid() == 0
    uid = (
        secrets.randbelow(sandbox.UID_RANGE[1] - sandbox.UID_RANGE[0]) + sandbox.UID_RANGE[0]
        if root
        else None
    )
    workdir = tempfile.mkdtemp(prefix="rlvr-sbx-")
    r_out = w_out = r_ver = w_ver = -1
    try:
        r_out, w_out = os.pipe()
        r_ver, w_ver = os.pipe()
        payload = {
            "program": program,
            "tests": tests if isinstance(tests, str) else list(tests),
            "entry_point": entry_point,
            "nonce": nonce,
            "verdict_fd": w_ver,
            "uid": uid if "uid_switch" in features else None,
            "features": sorted(features),
            "cpu_s": max(1, math.ceil(timeout_s) + 1),
            "wall_s": timeout_s,
            "limits": limits.__dict__,
            "guard_returns": guard_returns,
            "hide": _hidden_paths(),
        }
        path = os.path.join(workdir, "job.json")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f)
        if uid is not None and "uid_switch" in features:
            os.chown(workdir, uid, uid)  # the workdir when there is no private /tmp
        try:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", os.path.abspath(sandbox.__file__), workdir],
                stdin=subprocess.DEVNULL,
                stdout=w_out,
                stderr=w_out,
                pass_fds=(w_ver,),
                env=dict(sandbox.CLEAN_ENV),
                cwd=workdir,
                start_new_session=True,
            )
        finally:
            os.close(w_out)
            os.close(w_ver)
            w_out = w_ver = -1
        out, verdict, dropped, timed_out = _collect(
            proc, r_out, r_ver, start + timeout_s + _LAUNCH_GRACE_S, limits.output_bytes
        )
        if uid is not None and "pidns" not in features:
            _kill_uid(uid)
        rc = proc.returncode
    finally:
        for fd in (r_out, w_out, r_ver, w_ver):
            if fd >= 0:
                os.close(fd)
        shutil.rmtree(workdir, ignore_errors=True)
    text = out.decode("utf-8", "replace")
    if dropped:
        text += f"\n...[output truncated: {dropped} more bytes]"
    return _verdict(verdict, nonce, rc, timed_out, text, time.monotonic() - start)


def _hidden_paths() -> list[str]:
    """Grader-side places the program must not read: our cwd, this source checkout, the local data folder."""
    paths = [os.getcwd(), os.environ.get(DATA_DIR_ENV, "")]
    checkout = Path(__file__).resolve().parents[3]
    if (checkout / "pyproject.toml").exists():
        paths += [str(checkout), str(checkout.parent / "shared")]
    return [p for p in paths if p]


def _collect(
    proc: subprocess.Popen[bytes], r_out: int, r_ver: int, deadline: float, cap: int
) -> tuple[bytes, bytes, int, bool]:
    """Drain both pipes until the launcher exits (or the deadline), keeping at most `cap` output bytes."""
    out = bytearray()
    verdict = bytearray()
    dropped = 0
    timed_out = False
    poller = select.poll()
    open_fds = {r_out, r_ver}
    for fd in open_fds:
        poller.register(fd, select.POLLIN)
    exited_at: float | None = None
    while open_fds:
        now = time.monotonic()
        if exited_at is None and _exited(proc.pid):
            exited_at = now
        if exited_at is not None and now - exited_at > 0.5:
            break  # stray holders of the pipes (escaped children): stop waiting, they get killed below
        if now >= deadline:
            timed_out = exited_at is None
            break
        for fd, _ in poller.poll(max(1, int(min(deadline - now, 0.05) * 1000))):
            chunk = os.read(fd, 65536)
            if not chunk:
                poller.unregister(fd)
                open_fds.discard(fd)
            elif fd == r_ver:
                if len(verdict) < 65536:
                    verdict += chunk
            else:
                keep = max(0, cap - len(out))
                out += chunk[:keep]
                dropped += len(chunk) - min(keep, len(chunk))
    while exited_at is None and not timed_out and not _exited(proc.pid):
        if time.monotonic() >= deadline:
            timed_out = True
            break
        time.sleep(0.01)
    # Kill the whole group before reaping, so its id cannot have been reused by an unrelated process.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
    return bytes(out), bytes(verdict), dropped, timed_out


def _exited(pid: int) -> bool:
    """Has the launcher exited? Does not reap it (WNOWAIT), so its pid and process group stay ours."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _kill_uid(uid: int) -> None:
    """Without a pid namespace, processes that left the group (setsid) are found by their unique uid."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid == uid:
                os.kill(int(entry), signal.SIGKILL)
        except OSError:
            pass


def _verdict(
    verdict: bytes, nonce: str, rc: int, timed_out: bool, output: str, duration: float
) -> CodeResult:
    lines = verdict.decode("utf-8", "replace").split("\n")
    isolation: frozenset[str] = frozenset()
    notes: list[str] = []
    if lines and lines[0].startswith("I:"):
        try:
            info = json.loads(lines[0][2:])
            isolation = frozenset(info.get("features", ()))
            notes = list(info.get("errors", ()))
        except (ValueError, AttributeError, TypeError):
            notes = ["unreadable isolation report"]
        lines = lines[1:]
    rest = "\n".join(lines)

    def result(status: Status, reason: str, passed: bool = False) -> CodeResult:
        full = "; ".join([reason, *notes]) if notes else reason
        return CodeResult(passed, status, output, duration, full, isolation)

    if timed_out:
        return result("timeout", "wall-clock timeout")
    if rest == nonce + "\n" and rc == 0:
        return result("passed", "all tests passed", True)
    if rc == sandbox.TIMEOUT_EXIT:
        return result("timeout", "wall-clock timeout")
    if rc == 128 + signal.SIGXCPU:
        return result("timeout", "CPU time limit")
    if rc >= 128:
        try:
            name = signal.Signals(rc - 128).name
        except ValueError:
            name = str(rc - 128)
        return result("killed", f"killed by {name}")
    if rest.startswith("F:") and nonce not in rest:
        return result("failed", rest[2:].strip())
    if rest.startswith("E:") and nonce not in rest:
        return result("error", rest[2:].strip())
    if rc == 0:
        return result("failed", "program exited before the tests finished")
    return result("error", f"exit status {rc}")


# ------------------------------------------------------------------------------------------------ completions

_FENCE_RE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_PY_LANGS = {"", "python", "py", "python3", "py3"}


def extract_code(completion: str, entry_point: str | None = None) -> str:
    """The program in a completion: a fenced Python block, else the raw text.

    With several blocks, the last one defining `entry_point` wins (models often show usage after the
    solution), else the last Python block. An unterminated fence (a truncated generation) still counts.
    """
    blocks = [body for lang, body in _FENCE_RE.findall(completion) if lang.lower() in _PY_LANGS]
    if not blocks:
        return completion
    if entry_point:
        defining = [
            b for b in blocks if re.search(rf"^\s*(?:async\s+)?def\s+{re.escape(entry_point)}\s*\(", b, re.M)
        ]
        if defining:
            return defining[-1]
    return blocks[-1]


def _defines(code: str, entry_point: str) -> bool:
    return re.search(rf"^(?:async\s+)?def\s+{re.escape(entry_point)}\s*\(", code, re.M) is not None


def build_program(example: Mapping[str, Any], completion: str) -> str:
    """Program text for an example: HumanEval-style completions that are only a body get the prompt prepended.

    A full definition also gets the prompt first (for its imports and helper functions); the completion's
    `def` then replaces the prompt's docstring-only stub.
    """
    entry = example.get("entry_point")
    code = extract_code(completion, entry)
    prompt = example.get("prompt")
    setup = example.get("test_setup_code") or ""
    if isinstance(prompt, str) and prompt and entry:
        first = next((line for line in code.splitlines() if line.strip()), "")
        if first[:1] in (" ", "\t") or not _defines(code, entry):
            code = prompt + code if prompt.endswith("\n") else prompt + "\n" + code
        else:
            code = prompt.rstrip("\n") + "\n\n" + code
    return setup + ("\n" if setup and not setup.endswith("\n") else "") + code


def _extra(example: Mapping[str, Any]) -> Mapping[str, Any]:
    value = example.get("extra")
    return value if isinstance(value, Mapping) else {}


def example_tests(example: Mapping[str, Any]) -> str | list[str]:
    """The tests of an example: `tests`, HumanEval's `test` or MBPP's `test_list` (top level or under `extra`)."""
    extra = _extra(example)
    for source in (example, extra):
        for key in ("tests", "test", "test_list"):
            value = source.get(key)
            if isinstance(value, str) and value.strip():
                return value
            if isinstance(value, list | tuple) and value:
                return [str(v) for v in value]
    raise UserError("code example has no tests: expected a 'tests', 'test' or 'test_list' field")


class CodeReward(Reward):
    """1.0 when the extracted program passes all the example's tests in the sandbox, else 0.0.

    `score_batch` runs up to `workers` sandboxes at once (default: the CPU count).
    """

    name = "code"

    def __init__(
        self,
        timeout: float = 5.0,
        workers: int | None = None,
        limits: SandboxLimits | None = None,
        guard_returns: bool = True,
    ) -> None:
        if timeout <= 0:
            raise UserError(f"timeout must be positive, got {timeout}")
        self.timeout = float(timeout)
        self.workers = workers
        self.limits = limits or SandboxLimits()
        self.guard_returns = guard_returns

    def _task(self, example: Mapping[str, Any], completion: str) -> CodeTask:
        extra = _extra(example)
        merged = {**extra, **example}
        return CodeTask(
            build_program(merged, completion), example_tests(merged), merged.get("entry_point"), self.timeout
        )

    @staticmethod
    def _verdict(task: CodeTask, result: CodeResult) -> RewardVerdict:
        return RewardVerdict(1.0 if result.passed else 0.0, task.program, f"{result.status}: {result.reason}")

    def score(self, example: Mapping[str, Any], completion: str) -> RewardVerdict:
        task = self._task(example, completion)
        result = run_tests(
            task.program,
            task.tests,
            task.entry_point,
            task.timeout_s,
            limits=self.limits,
            guard_returns=self.guard_returns,
        )
        return self._verdict(task, result)

    def score_batch(self, examples: Sequence[Mapping[str, Any]], completions: Sequence[str]) -> list[RewardVerdict]:
        tasks = [self._task(ex, c) for ex, c in zip(examples, completions, strict=True)]
        results = run_batch(tasks, self.workers, limits=self.limits, guard_returns=self.guard_returns)
        return [self._verdict(t, r) for t, r in zip(tasks, results, strict=True)]
