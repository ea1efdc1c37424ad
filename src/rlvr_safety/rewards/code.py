"""Code reward: grade model-written Python against tests, without the tests ever sharing a process with it.

Three processes take part in a grade (see docs/rewards.md):

* the grader (this module, the caller's process) starts the other two, enforces the wall clock, reads the
  verdict and decides the `CodeResult`; model output never executes here;
* the sandbox (`sandbox.py`): the program, isolated (namespaces, fresh uid, cgroup and rlimits, host hidden),
  answering calls of its functions with plain data;
* the trusted test runner (`testrunner.py`): the dataset's tests, with the program's functions bound to proxies
  that forward calls over pipes and decode the replies strictly (`wire.py`). It writes the verdict on a pipe
  only it holds.

The program can therefore neither shadow what the tests use nor hand them an object that compares equal to
everything, and there is no secret in its memory to steal. A failure of the machinery (the sandbox could not be
set up, the runner died, a timeout while the processes waited for a CPU rather than ran) is reported as status
"infra_error", never as a pass or a fail, so that evaluation stores it as an error and redoes it on resume.

`CodeReward` extracts the program from a completion and grades all-or-nothing (1.0 only when every test passed),
because partial credit per assert rewards special-casing the visible tests.
"""

from __future__ import annotations

import atexit
import itertools
import json
import marshal
import math
import os
import py_compile
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
from rlvr_safety.rewards import sandbox, testrunner
from rlvr_safety.rewards.base import Reward, RewardVerdict

__all__ = [
    "WEAK_SANDBOX_ENV",
    "CodeResult",
    "CodeReward",
    "CodeTask",
    "SandboxCapabilities",
    "SandboxLimits",
    "SandboxUnavailable",
    "build_program",
    "code_prompt",
    "example_tests",
    "extract_code",
    "run_batch",
    "run_tests",
    "sandbox_capabilities",
    "trusted_context",
]

Status = Literal["passed", "failed", "timeout", "error", "killed", "infra_error"]
# Set to 1 to run where the kernel refuses namespaces, behind an audit hook only (not a security boundary).
WEAK_SANDBOX_ENV = "RLVR_SAFETY_WEAK_SANDBOX"
# The grader stops the run at `timeout_s`; the launcher's own clock and the grader's final one are backstops.
_LAUNCHER_GRACE_S = 0.5
_FINAL_GRACE_S = 2.0
# A timeout counts as "under load" (an infrastructure error, redone later) when the sandbox and runner spent at
# least this share of the limit runnable but waiting for a CPU, while running for less than _BUSY_SHARE of it.
_WAIT_SHARE = 0.25
_BUSY_SHARE = 0.75
_REQUIRED = frozenset({"netns", "mountns", "pidns", "ipcns", "private_proc", "private_tmp", "hidden_run", "rlimits"})


# ------------------------------------------------------------------------------------------------ sandbox API


@dataclass(frozen=True)
class SandboxLimits:
    """Resource caps for one run; defaults suit HumanEval/MBPP-sized tasks.

    `memory_bytes` and `processes` hold for the sandbox as a whole where the host grants cgroups (see
    `CodeResult.per_process`); the address-space rlimit (per process) backs the memory cap up everywhere.
    """

    memory_bytes: int = 1 << 30
    file_bytes: int = 10 << 20
    tmpfs_bytes: int = 64 << 20
    open_files: int = 64
    processes: int = 32
    output_bytes: int = 8192
    runner_memory_bytes: int = 2 << 30


@dataclass(frozen=True)
class CodeResult:
    """One graded run. `passed` is True only when the trusted runner saw every test run and pass.

    `status` "infra_error" means the machinery failed (not the program): not a grade, redo it. `per_process`
    names the limits that held per process only (no cgroup for them here), empty when all held sandbox-wide.
    """

    passed: bool
    status: Status
    output: str
    duration_s: float
    reason: str = ""
    isolation: frozenset[str] = field(default_factory=frozenset)
    per_process: frozenset[str] = field(default_factory=frozenset)

    @property
    def infra_error(self) -> bool:
        return self.status == "infra_error"


@dataclass(frozen=True)
class CodeTask:
    """A program with its tests: a HumanEval `check(candidate)` source, plain test code, or assert strings.

    `context` is trusted code run before the tests on the trusted side (HumanEval's prompt, MBPP's setup code),
    so that helpers the tests call (e.g. HumanEval's `poly`) are the dataset's, not the program's.
    """

    program: str
    tests: str | list[str]
    entry_point: str | None = None
    timeout_s: float = 5.0
    context: str = ""


class SandboxUnavailable(UserError):
    """The host cannot isolate model-written code as required (raised, never silently downgraded)."""


@dataclass(frozen=True)
class SandboxCapabilities:
    """Which isolation features the kernel and our privileges grant here (probed once per process)."""

    features: frozenset[str]
    errors: tuple[str, ...] = ()
    cgroup: str = ""  # "v1" or "v2" when the sandbox-wide memory and process caps are available, else ""

    def __contains__(self, name: object) -> bool:
        return name in self.features

    @property
    def per_process(self) -> frozenset[str]:
        return frozenset() if self.cgroup else frozenset({"memory", "processes"})


def run_tests(
    program: str,
    tests: str | Sequence[str],
    entry_point: str | None = None,
    timeout_s: float = 5.0,
    *,
    limits: SandboxLimits | None = None,
    context: str = "",
) -> CodeResult:
    """Run `tests` on the trusted side against `program` in the sandbox; `timeout_s` bounds the run (wall clock).

    `tests` is either source (if it defines `check` and `entry_point` is given, `check(<proxy of entry_point>)`
    is called, HumanEval style) or a list of statements such as MBPP's asserts, run in order with the entry
    point (and any other name the tests use that the program defines, builtins excepted) bound to proxies.
    Raises SandboxUnavailable when the host cannot isolate the program (see `sandbox_capabilities`).
    """
    caps = sandbox_capabilities()
    return _run(program, tests, entry_point, timeout_s, limits or SandboxLimits(), caps, context)


def run_batch(
    items: Iterable[CodeTask | Mapping[str, Any]],
    max_workers: int | None = None,
    *,
    limits: SandboxLimits | None = None,
) -> list[CodeResult]:
    """Run many tasks with at most `max_workers` sandboxes alive at once (threads launching processes)."""
    tasks = [it if isinstance(it, CodeTask) else CodeTask(**dict(it)) for it in items]
    if not tasks:
        return []
    workers = max(1, min(len(tasks), max_workers or os.cpu_count() or 1))
    sandbox_capabilities()  # probe once before the threads start

    def one(t: CodeTask) -> CodeResult:
        return run_tests(t.program, t.tests, t.entry_point, t.timeout_s, limits=limits, context=t.context)

    if workers == 1:
        return [one(t) for t in tasks]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sandbox") as pool:
        return list(pool.map(one, tasks))


_caps_lock = threading.Lock()
_caps: SandboxCapabilities | None = None


def sandbox_capabilities(refresh: bool = False) -> SandboxCapabilities:
    """Probe (once) the isolation this host grants, by running an empty program through the whole path.

    Full isolation (network, mount, pid and IPC namespaces, private /proc and /tmp, /run hidden, rlimits, and a
    fresh uid as root or a user namespace otherwise) is required. Anything less raises SandboxUnavailable with
    one line saying what is missing, unless RLVR_SAFETY_WEAK_SANDBOX=1 asks for the audit-hook fallback.
    """
    global _caps
    with _caps_lock:
        if _caps is None or refresh:
            wanted = frozenset({*sandbox.NAMESPACES, "uid_switch", "userns"})
            group = _cgroup_support()
            probe = SandboxCapabilities(wanted, (), group.version if group else "")
            res = _run("def f():\n    return 1\n", ["assert f() == 1"], None, 30.0, SandboxLimits(), probe, "")
            notes = tuple(n for n in res.reason.split("; ")[1:] if n)
            caps = SandboxCapabilities(res.isolation, notes, probe.cgroup)
            weak = os.environ.get(WEAK_SANDBOX_ENV, "") not in ("", "0")
            if not res.passed:
                raise SandboxUnavailable(
                    f"code sandbox unavailable: the probe run did not pass ({res.status}: {res.reason})"
                )
            missing = sorted(_REQUIRED - res.isolation)
            if not ({"uid_switch", "userns"} & res.isolation):
                missing.append("uid_switch or userns")
            if missing and not weak:
                raise SandboxUnavailable(
                    f"code sandbox unavailable: the kernel refused {', '.join(missing)}"
                    f"{' (' + '; '.join(notes) + ')' if notes else ''}; run as root or allow user namespaces, "
                    f"or set {WEAK_SANDBOX_ENV}=1 to accept audit-hook confinement (not a security boundary)"
                )
            _caps = caps
        return _caps


# ------------------------------------------------------------------------------------------------ cgroups


@dataclass(frozen=True)
class _CgroupSupport:
    version: str  # "v1" or "v2"
    parents: tuple[tuple[str, tuple[str, ...]], ...]  # (directory to create run groups in, controllers there)


_cgroup_lock = threading.Lock()
_cgroup_cache: list[_CgroupSupport | None] = []
_run_ids = itertools.count()


def _cgroup_support() -> _CgroupSupport | None:
    """Where this process may create cgroups with memory and pids limits: v2 if delegated, else v1, else None."""
    with _cgroup_lock:
        if not _cgroup_cache:
            _cgroup_cache.append(_find_cgroups())
        return _cgroup_cache[0]


def _find_cgroups() -> _CgroupSupport | None:
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            mounts = [line.split() for line in f]
        with open("/proc/self/cgroup", encoding="utf-8") as f:
            own = [line.rstrip("\n").split(":", 2) for line in f]
    except OSError:
        return None
    v2_path = next((p for h, c, p in own if h == "0" and c == ""), None)
    v1_paths = {ctrl: p for _, c, p in own for ctrl in c.split(",") if ctrl}
    for m in mounts:
        sep = m.index("-")
        fstype, root, point = m[sep + 1], m[3], m[4]
        if fstype == "cgroup2" and v2_path is not None:
            parent = _inside(point, root, v2_path)
            if parent and _enable_v2(parent):
                return _sweep(_CgroupSupport("v2", ((parent, ("memory", "pids")),)))
    v1 = []
    for ctrl in ("memory", "pids"):
        for m in mounts:
            sep = m.index("-")
            if m[sep + 1] == "cgroup" and ctrl in m[sep + 3].split(",") and ctrl in v1_paths:
                parent = _inside(m[4], m[3], v1_paths[ctrl])
                if parent:
                    v1.append((parent, (ctrl,)))
                break
    if len(v1) == 2 and all(_try_mkdir(p) for p, _ in v1):
        return _sweep(_CgroupSupport("v1", tuple(v1)))
    return None


def _sweep(support: _CgroupSupport) -> _CgroupSupport:
    """Remove run cgroups left behind by graders that died (their pid is gone); empty ones only."""
    for parent, _ in support.parents:
        try:
            names = os.listdir(parent)
        except OSError:
            continue
        for name in names:
            parts = name.split("-")
            if name.startswith("rlvr-sbx-") and len(parts) == 4 and parts[2].isdigit():
                if not os.path.exists(f"/proc/{parts[2]}"):
                    try:
                        os.rmdir(os.path.join(parent, name))
                    except OSError:
                        pass
    return support


def _inside(point: str, root: str, own: str) -> str | None:
    """Our cgroup's directory under a mount (or the mount itself when our group is not visible there)."""
    rel = own[len(root) :] if root != "/" and own.startswith(root) else own
    path = os.path.join(point, rel.lstrip("/"))
    return path if os.path.isdir(path) else (point if os.path.isdir(point) else None)


def _enable_v2(parent: str) -> bool:
    try:
        with open(os.path.join(parent, "cgroup.controllers"), encoding="utf-8") as f:
            if not {"memory", "pids"} <= set(f.read().split()):
                return False
        with open(os.path.join(parent, "cgroup.subtree_control"), encoding="utf-8") as f:
            if {"memory", "pids"} <= set(f.read().split()):
                return _try_mkdir(parent)
        with open(os.path.join(parent, "cgroup.subtree_control"), "w", encoding="utf-8") as f:
            f.write("+memory +pids")  # EBUSY when processes live in `parent` itself (no internal processes)
        return _try_mkdir(parent)
    except OSError:
        return False


def _try_mkdir(parent: str) -> bool:
    probe = os.path.join(parent, f"rlvr-probe-{os.getpid()}")
    try:
        os.mkdir(probe)
        os.rmdir(probe)
        return True
    except OSError:
        return False


def _write(path: str, value: str | int) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(str(value))


def _make_cgroups(support: _CgroupSupport, limits: SandboxLimits) -> list[str]:
    """One cgroup per hierarchy for this run, limits written; the launcher joins them before anything else."""
    name = f"rlvr-sbx-{os.getpid()}-{next(_run_ids)}"
    made: list[str] = []
    try:
        for parent, controllers in support.parents:
            path = os.path.join(parent, name)
            os.mkdir(path)
            made.append(path)
            if "memory" in controllers:
                if support.version == "v2":
                    _write(os.path.join(path, "memory.max"), limits.memory_bytes)
                    if os.path.exists(os.path.join(path, "memory.swap.max")):
                        _write(os.path.join(path, "memory.swap.max"), 0)
                else:
                    _write(os.path.join(path, "memory.limit_in_bytes"), limits.memory_bytes)
                    try:  # swap accounting may be off; then there is no memsw file (or it refuses writes)
                        _write(os.path.join(path, "memory.memsw.limit_in_bytes"), limits.memory_bytes)
                    except OSError:
                        pass
            if "pids" in controllers:
                _write(os.path.join(path, "pids.max"), limits.processes)
    except OSError:
        _remove_cgroups(made)
        raise
    return made


def _cgroup_pids(groups: Sequence[str]) -> list[int]:
    for group in groups:
        try:
            with open(os.path.join(group, "cgroup.procs"), encoding="utf-8") as f:
                return [int(x) for x in f.read().split()]
        except OSError:
            continue
    return []


def _oom_killed(groups: Sequence[str]) -> bool:
    for group in groups:
        for name in ("memory.events", "memory.oom_control"):
            try:
                with open(os.path.join(group, name), encoding="utf-8") as f:
                    for line in f:
                        key, _, value = line.partition(" ")
                        if key == "oom_kill" and int(value) > 0:
                            return True
            except (OSError, ValueError):
                continue
    return False


def _remove_cgroups(groups: Sequence[str]) -> None:
    """Remove the run's cgroups once empty (killed processes take a moment to leave)."""
    for group in groups:
        for attempt in range(200):
            try:
                os.rmdir(group)
                break
            except FileNotFoundError:
                break
            except OSError:
                if attempt == 100:
                    for pid in _cgroup_pids([group]):
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except OSError:
                            pass
                time.sleep(0.005)


# ------------------------------------------------------------------------------------------------ one run

_scripts_lock = threading.Lock()
_scripts_cache: list[tuple[str, str, Any]] = []


def _scripts() -> tuple[str, str, Any]:
    """The sandbox and runner scripts byte-compiled once per process into a private (0700) folder, and wire.py's
    code object: each run then starts without compiling ~800 lines twice over (a few ms of CPU per run)."""
    with _scripts_lock:
        if not _scripts_cache:
            wire_path = os.path.join(os.path.dirname(os.path.abspath(sandbox.__file__)), "wire.py")
            with open(wire_path, encoding="utf-8") as f:
                wire_code = compile(f.read(), wire_path, "exec")
            paths = [os.path.abspath(sandbox.__file__), os.path.abspath(testrunner.__file__)]
            try:
                folder = tempfile.mkdtemp(prefix="rlvr-scripts-")
                atexit.register(shutil.rmtree, folder, True)
                paths = [
                    str(
                        py_compile.compile(
                            p,
                            cfile=os.path.join(folder, os.path.basename(p) + "c"),
                            doraise=True,
                            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
                        )
                    )
                    for p in paths
                ]
            except (OSError, py_compile.PyCompileError):
                pass  # run the sources
            _scripts_cache.append((paths[0], paths[1], wire_code))
        return _scripts_cache[0]



def _run(
    program: str,
    tests: str | Sequence[str],
    entry_point: str | None,
    timeout_s: float,
    limits: SandboxLimits,
    caps: SandboxCapabilities,
    context: str,
) -> CodeResult:
    start = time.monotonic()
    features = caps.features
    root = os.geteuid() == 0
    uid = (
        secrets.randbelow(sandbox.UID_RANGE[1] - sandbox.UID_RANGE[0]) + sandbox.UID_RANGE[0]
        if root and "uid_switch" in features
        else None
    )
    support = _cgroup_support() if caps.cgroup else None
    per_process = frozenset() if support else frozenset({"memory", "processes"})
    workdir = tempfile.mkdtemp(prefix="rlvr-sbx-")
    runner_dir = tempfile.mkdtemp(prefix="rlvr-run-")
    fds: list[int] = []
    groups: list[str] = []
    launcher: subprocess.Popen[bytes] | None = None
    runner: subprocess.Popen[bytes] | None = None

    def pipe() -> tuple[int, int]:
        r, w = os.pipe()
        fds.extend((r, w))
        return r, w

    def close(*ends: int) -> None:
        for fd in ends:
            if fd in fds:
                fds.remove(fd)
                os.close(fd)

    try:
        sandbox_script, runner_script, wire_code = _scripts()
        r_out, w_out = pipe()
        r_status, w_status = pipe()
        r_call, w_call = pipe()
        r_reply, w_reply = pipe()
        r_verdict, w_verdict = pipe()
        if support:
            groups = _make_cgroups(support, limits)
        _write_job(
            os.path.join(workdir, "job"),
            {
                "program": program,
                "wire": wire_code,
                "status_fd": w_status,
                "call_fd": r_call,
                "reply_fd": w_reply,
                "uid": uid,
                "features": sorted(features),
                "cpu_s": max(1, math.ceil(timeout_s) + 1),
                "wall_s": timeout_s + _LAUNCHER_GRACE_S,
                "limits": limits.__dict__,
                "hide": _hidden_paths(),
                "sockets": _host_sockets(),
                "cgroups": groups,
            },
        )
        _write_job(
            os.path.join(runner_dir, "job"),
            {
                "tests": tests if isinstance(tests, str) else list(tests),
                "entry_point": entry_point,
                "context": context,
                "wire": wire_code,
                "call_fd": w_call,
                "reply_fd": r_reply,
                "verdict_fd": w_verdict,
                "memory_bytes": limits.runner_memory_bytes,
                "cpu_s": max(2, math.ceil(timeout_s) + 2),
                # Weak isolation (same uid, same pid namespace as the program): hide the runner's /proc entries.
                "undumpable": not ({"pidns", "uid_switch"} & features),
            },
        )
        if uid is not None:
            os.chown(workdir, uid, uid)  # the workdir when there is no private /tmp
        launcher = subprocess.Popen(
            [sys.executable, "-I", "-S", sandbox_script, workdir],
            stdin=subprocess.DEVNULL,
            stdout=w_out,
            stderr=w_out,
            pass_fds=(w_status, r_call, w_reply),
            env=dict(sandbox.CLEAN_ENV),
            cwd=workdir,
            start_new_session=True,
        )
        close(w_status, r_call, w_reply)
        runner = subprocess.Popen(
            [sys.executable, "-I", "-S", runner_script, os.path.join(runner_dir, "job")],
            stdin=subprocess.DEVNULL,
            stdout=w_out,
            stderr=w_out,
            pass_fds=(w_call, r_reply, w_verdict),
            env=dict(sandbox.CLEAN_ENV),
            cwd=runner_dir,
            start_new_session=True,
        )
        close(w_call, r_reply, w_verdict, w_out)
        got = _collect(launcher, runner, r_out, r_status, r_verdict, start + timeout_s, limits.output_bytes, groups)
        oom = _oom_killed(groups)
    except OSError as exc:  # fork/pipe/cgroup failures: the machinery, not the program
        return CodeResult(
            False, "infra_error", "", time.monotonic() - start, f"sandbox start failed: {exc}", per_process=per_process
        )
    finally:
        for proc in (launcher, runner):
            if proc is not None:
                _stop(proc)
        for fd in list(fds):
            close(fd)
        if uid is not None and "pidns" not in features:
            _kill_uid(uid)
        _remove_cgroups(groups)
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(runner_dir, ignore_errors=True)
    assert launcher is not None
    text = got.out.decode("utf-8", "replace")
    if got.dropped:
        text += f"\n...[output truncated: {got.dropped} more bytes]"
    result = _decide(got, launcher.returncode, oom, timeout_s, text, time.monotonic() - start)
    isolation = result.isolation | ({f"cgroup_{support.version}"} if support and result.isolation else set())
    return CodeResult(
        result.passed, result.status, result.output, result.duration_s, result.reason, isolation, per_process
    )


def _write_job(path: str, payload: dict[str, Any]) -> None:
    """Root-only file (marshal: plain data, and no `json` import in the children)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        marshal.dump(payload, f)


def _hidden_paths() -> list[str]:
    """Grader-side places the program must not read: our cwd, this source checkout, the local data folder."""
    paths = [os.getcwd(), os.environ.get(DATA_DIR_ENV, "")]
    checkout = Path(__file__).resolve().parents[3]
    if (checkout / "pyproject.toml").exists():
        paths += [str(checkout), str(checkout.parent / "shared")]
    return [p for p in paths if p]


def _host_sockets() -> list[str]:
    """Filesystem Unix sockets of this network namespace that the sandbox's covers do not already hide."""
    covered = tuple(d + "/" for d in (*sandbox.RUNTIME_DIRS, "/tmp", "/var/tmp", "/dev/shm", *sandbox.HIDDEN_DIRS))
    try:
        with open("/proc/net/unix", encoding="utf-8", errors="replace") as f:
            next(f, None)
            paths = {parts[7] for line in f if len(parts := line.split()) >= 8 and parts[7].startswith("/")}
    except OSError:
        return []
    return sorted(p for p in paths if not p.startswith(covered))


@dataclass
class _Collected:
    out: bytes = b""
    status: bytes = b""
    verdict: bytes = b""
    dropped: int = 0
    timed_out: bool = False
    load: tuple[float, float] | None = None  # (seconds waiting for a CPU, seconds running) at the deadline


def _collect(
    launcher: subprocess.Popen[bytes],
    runner: subprocess.Popen[bytes],
    r_out: int,
    r_status: int,
    r_verdict: int,
    deadline: float,
    cap: int,
    groups: Sequence[str],
) -> _Collected:
    """Drain the pipes until the runner has given its verdict (and, for "C", the launcher has exited).

    At `deadline` the grader samples how much the processes waited for a CPU, then tells the launcher to stop
    (it kills and reaps the sandbox itself and exits with TIMEOUT_EXIT); a later final deadline is the backstop.
    """
    got = _Collected()
    out = bytearray()
    status = bytearray()
    verdict = bytearray()
    poller = select.poll()
    open_fds = {r_out, r_status, r_verdict}
    for fd in open_fds:
        poller.register(fd, select.POLLIN)
    final = deadline + _FINAL_GRACE_S
    stopped = False
    hung_up_at: float | None = None  # when the runner reported that the sandbox hung up
    while True:
        now = time.monotonic()
        if r_verdict not in open_fds:  # the runner has finished (or died)
            if not verdict.startswith(b"C"):
                break
            # The sandbox hung up: its exit status says why (a signal, the CPU limit, the clock). Give the
            # launcher a moment to report it; a sandbox that closed its pipes and lingers is stopped below.
            hung_up_at = hung_up_at or now
            if _exited(launcher.pid) or now - hung_up_at > 0.5:
                break
        if now >= deadline and not stopped:
            stopped = True
            got.timed_out = r_verdict in open_fds
            got.load = _load_sample(launcher.pid, runner.pid, groups)
            try:
                os.kill(launcher.pid, signal.SIGALRM)  # the launcher's own wall clock, now
            except ProcessLookupError:
                pass
            if got.timed_out:
                _stop(runner)
        if now >= final:
            got.timed_out = got.timed_out or r_verdict in open_fds
            break
        if not open_fds:
            time.sleep(0.005)
            continue
        limit = deadline if not stopped else final
        for fd, _ in poller.poll(max(1, int(min(limit - now, 0.05) * 1000))):
            chunk = os.read(fd, 65536)
            if not chunk:
                poller.unregister(fd)
                open_fds.discard(fd)
            elif fd == r_verdict:
                if len(verdict) < 65536:
                    verdict += chunk
            elif fd == r_status:
                if len(status) < 65536:
                    status += chunk
            else:
                keep = max(0, cap - len(out))
                out += chunk[:keep]
                got.dropped += len(chunk) - min(keep, len(chunk))
    got.out, got.status, got.verdict = bytes(out), bytes(status), bytes(verdict)
    return got


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Kill the process group before reaping, so its id cannot have been reused by an unrelated process."""
    if proc.returncode is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _exited(pid: int) -> bool:
    """Has the child exited? Does not reap it (WNOWAIT), so its pid and process group stay ours."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _load_sample(launcher_pid: int, runner_pid: int, groups: Sequence[str]) -> tuple[float, float]:
    """(seconds spent runnable but waiting for a CPU, seconds on a CPU), summed over the sandbox and the runner.

    From /proc/<pid>/schedstat of every process of the run: the cgroup's members, or else the launcher's
    descendants. A sleeping program accrues neither; one starved by other work accrues waiting.
    """
    pids = set(_cgroup_pids(groups)) or _descendants(launcher_pid)
    pids.add(runner_pid)
    wait = run = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/schedstat", encoding="ascii") as f:
                fields = f.read().split()
            run += int(fields[0])
            wait += int(fields[1])
        except (OSError, ValueError, IndexError):
            continue
    return wait / 1e9, run / 1e9


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = {pid}, [pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


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


def _decide(got: _Collected, rc: int, oom: bool, timeout_s: float, output: str, duration: float) -> CodeResult:
    """The result: the runner's verdict, read together with the sandbox's exit status and the clock."""
    isolation: frozenset[str] = frozenset()
    notes: list[str] = []
    status_text = got.status.decode("utf-8", "replace")
    setup_error = ""
    for line in status_text.split("\n"):
        if line.startswith("I:"):
            try:
                info = json.loads(line[2:])
                isolation = frozenset(info.get("features", ()))
                notes = [str(e) for e in info.get("errors", ())]
            except (ValueError, AttributeError, TypeError):
                notes = ["unreadable isolation report"]
        elif line.startswith("E:"):
            setup_error = line[2:].strip()
    verdict = got.verdict.decode("utf-8", "replace").rstrip("\n")
    kind, _, why = verdict.partition(":")

    def result(status: Status, reason: str, passed: bool = False) -> CodeResult:
        full = "; ".join([reason, *notes]) if notes else reason
        return CodeResult(passed, status, output, duration, full, isolation)

    if kind == "P" and not got.timed_out:
        return result("passed", "all tests passed", True)
    if setup_error:
        return result("infra_error", setup_error)
    if got.timed_out or rc == sandbox.TIMEOUT_EXIT:
        if got.load is not None:
            wait, run = got.load
            if wait >= _WAIT_SHARE * timeout_s and run < _BUSY_SHARE * timeout_s:
                return result(
                    "infra_error",
                    f"timeout under load: waited {wait:.1f}s for a CPU, ran {run:.1f}s of {timeout_s:g}s",
                )
        return result("timeout", "wall-clock timeout")
    if kind in ("F", "E"):
        return result("failed" if kind == "F" else "error", why.strip())
    if kind == "C" and rc < 0:  # the grader stopped a sandbox that hung up and lingered
        return result("failed", "program closed its pipes before the tests finished")
    if rc == 128 + signal.SIGXCPU:
        return result("timeout", "CPU time limit")
    if oom and rc >= 128:
        return result("killed", "out of memory (the sandbox's memory limit)")
    if rc >= 128:
        try:
            name = signal.Signals(rc - 128).name
        except ValueError:
            name = str(rc - 128)
        return result("killed", f"killed by {name}")
    if kind == "C":
        return result("failed", "program exited before the tests finished")
    return result("infra_error", f"test runner gave no verdict (sandbox exit status {rc})")


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


_CODE_START_RE = re.compile(r"^(?:from\s|import\s|def\s|async\s+def\s|class\s|@)", re.M)


def code_prompt(example: Mapping[str, Any]) -> str:
    """The example's prompt when it is Python that defines the entry point (HumanEval), else "" (MBPP's prompt
    is English: put in front of the program it would be a SyntaxError, and it is no test context either).

    A prompt with an English preamble before the code (e.g. the instruction eval puts before HumanEval's) yields
    its code part."""
    prompt, entry = example.get("prompt"), example.get("entry_point")
    if not (isinstance(prompt, str) and prompt and isinstance(entry, str) and entry and _defines(prompt, entry)):
        return ""
    start = _CODE_START_RE.search(prompt)
    for candidate in (prompt, prompt[start.start() :] if start else ""):
        if candidate and _defines(candidate, entry):
            try:
                compile(candidate, "<prompt>", "exec")
            except (SyntaxError, ValueError):
                continue
            return candidate
    return ""


def build_program(example: Mapping[str, Any], completion: str) -> str:
    """Program text for an example: HumanEval-style completions that are only a body get the prompt prepended.

    A full definition also gets the prompt first (for its imports and helper functions); the completion's
    `def` then replaces the prompt's docstring-only stub. A prompt that is not code is never prepended.
    """
    entry = example.get("entry_point")
    code = extract_code(completion, entry)
    prompt = code_prompt(example)
    setup = example.get("test_setup_code") or ""
    if prompt and entry:
        first = next((line for line in code.splitlines() if line.strip()), "")
        if first[:1] in (" ", "\t") or not _defines(code, entry):
            code = prompt + code if prompt.endswith("\n") else prompt + "\n" + code
        else:
            code = prompt.rstrip("\n") + "\n\n" + code
    return setup + ("\n" if setup and not setup.endswith("\n") else "") + code


def trusted_context(example: Mapping[str, Any]) -> str:
    """Trusted code the tests run after, on the trusted side: MBPP's setup code and HumanEval's prompt (whose
    helpers, e.g. `poly` or `encode_cyclic`, the tests call: they must be the dataset's, not the program's)."""
    setup = example.get("test_setup_code") or ""
    prompt = code_prompt(example)
    return "\n".join(part for part in (setup, prompt) if part)


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
    """1.0 when the extracted program passes all the example's tests, else 0.0.

    `score_batch` runs up to `workers` sandboxes at once (default: the CPU count). A run that failed for reasons
    of the machinery (status "infra_error") scores 0.0 with `error=True`: evaluation stores it as an error and
    grades it again on resume.
    """

    name = "code"

    def __init__(
        self,
        timeout: float = 5.0,
        workers: int | None = None,
        limits: SandboxLimits | None = None,
    ) -> None:
        if timeout <= 0:
            raise UserError(f"timeout must be positive, got {timeout}")
        self.timeout = float(timeout)
        self.workers = workers
        self.limits = limits or SandboxLimits()

    def _task(self, example: Mapping[str, Any], completion: str) -> CodeTask:
        extra = _extra(example)
        merged = {**extra, **example}
        return CodeTask(
            build_program(merged, completion),
            example_tests(merged),
            merged.get("entry_point"),
            self.timeout,
            trusted_context(merged),
        )

    @staticmethod
    def _verdict(task: CodeTask, result: CodeResult) -> RewardVerdict:
        return RewardVerdict(
            1.0 if result.passed else 0.0, task.program, f"{result.status}: {result.reason}", result.infra_error
        )

    def score(self, example: Mapping[str, Any], completion: str) -> RewardVerdict:
        task = self._task(example, completion)
        result = run_tests(
            task.program, task.tests, task.entry_point, task.timeout_s, limits=self.limits, context=task.context
        )
        return self._verdict(task, result)

    def score_batch(self, examples: Sequence[Mapping[str, Any]], completions: Sequence[str]) -> list[RewardVerdict]:
        tasks = [self._task(ex, c) for ex, c in zip(examples, completions, strict=True)]
        results = run_batch(tasks, self.workers, limits=self.limits)
        return [self._verdict(t, r) for t, r in zip(tasks, results, strict=True)]
