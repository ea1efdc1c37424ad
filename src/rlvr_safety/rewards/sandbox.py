"""Run an untrusted Python program in an isolated, resource-limited process and answer calls into it.

Model-written code is hostile by assumption: RL optimises against the grader, so anything the grader lets a
program do (exit early, print "passed", patch `check`, return an object equal to everything) will be found.
Hence the split (see `code.py`): the tests never run in this process. A trusted test runner (`testrunner.py`, a
separate process) executes them and forwards each call of a program function over a pipe; this file runs the
program and answers those calls with plain data (`wire.py`). Nothing the program defines reaches the runner
except values built by the runner's own decoder, and no secret exists in this process: the verdict is the
runner's, on a pipe this process never holds.

Layout. The grader (`rlvr_safety.rewards.code`) starts `python -I -S sandbox.py <dir>` (this file, kept to a few
light stdlib imports because every run pays for them) as a *launcher* in a new session with a scrubbed
environment. The launcher reads the job from a root-only file and deletes it, joins the run's cgroups (memory and
process count for the sandbox as a whole, where the host allows), unshares network, mount, pid and IPC namespaces
(as root directly, otherwise inside a user namespace), and forks pid 1 of the new pid namespace, which it kills
and reaps itself when the wall clock runs out. Pid 1 hides the host (empty tmpfs over home, project and data
directories, over /run and over every other host Unix socket path; private tmpfs over the world-writable
directories, where the working directory lives; a fresh /proc) and forks the worker. The worker switches to a
random unprivileged uid, sets rlimits (CPU, address space, file size, open files, processes, no core dumps;
clamped to the host's hard limits), no-new-privs, non-dumpable and a parent-death signal, reports the isolation it
got on the status pipe and closes it (so the program cannot forge a setup error), then loads the program and
serves calls. When pid 1 dies the kernel kills everything left in the namespace, forks and setsid'd processes
included.

Where the kernel refuses a namespace, the grader refuses to run (see `code.sandbox_capabilities`) unless weak
isolation was asked for explicitly; then the worker's audit hook stands in (audit_net / audit_fs / audit_kill: no
sockets, no writes outside the working directory, no signals, no new executables), a speed bump, not a wall.
"""

from __future__ import annotations

import marshal
import os
import signal
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs import time in every sandboxed run
    from collections.abc import Iterable
    from typing import Any, NoReturn

_CLONE_NEWNS = 0x00020000
_CLONE_NEWIPC = 0x08000000
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWPID = 0x20000000
_CLONE_NEWNET = 0x40000000
NAMESPACES = {"netns": _CLONE_NEWNET, "mountns": _CLONE_NEWNS, "pidns": _CLONE_NEWPID, "ipcns": _CLONE_NEWIPC}
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 32, 4096, 16384, 1 << 18
_PR_SET_PDEATHSIG, _PR_SET_DUMPABLE, _PR_SET_NO_NEW_PRIVS = 1, 4, 38
_WORLD_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm", "/var/lock")
# Covered by empty tmpfs in the sandbox (plus the grader's cwd and checkout): homes, project and data trees.
HIDDEN_DIRS = ("/home", "/root", "/work", "/workspace", "/mnt", "/media", "/srv", "/data", "/opt")
# Runtime state of the host's services (sockets of dbus, systemd, docker, databases): replaced by an empty tmpfs.
RUNTIME_DIRS = ("/run", "/var/run")
_SYSTEM_DIRS = tuple(
    d + "/"
    for d in (
        "/usr",
        "/bin",
        "/sbin",
        "/lib",
        "/lib64",
        "/etc",
        "/proc",
        "/sys",
        "/dev",
        "/run",
        "/var",
        "/boot",
    )
)
UID_RANGE = (1_500_000_000, 1_900_000_000)  # fresh uid per run: own NPROC count, can signal nothing else
CLEAN_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
# With a mount namespace the interpreter's directories are bound back readable (see _mask_host_dirs) and a program
# imports what it uses. Without one, the sandbox uid may not reach the interpreter's files at all: import these
# before privileges drop.
_PRELOAD_WEAK = (
    "bisect collections collections.abc copy ctypes datetime decimal fractions functools heapq itertools json "
    "math operator random re resource string "
    "abc array ast base64 binascii bz2 calendar cmath contextlib copyreg csv dataclasses difflib enum fnmatch "
    "glob gzip hashlib inspect io lzma numbers pathlib pickle pprint queue secrets select shutil socket "
    "statistics struct subprocess tempfile textwrap threading time tokenize types typing unicodedata uuid "
    "weakref zlib"
).split()
TIMEOUT_EXIT = 124


def load_wire(code: Any) -> Any:
    """The `wire` module from its code object (compiled by the grader, passed in the job)."""
    import types

    module = types.ModuleType("rlvr_wire")
    exec(code, module.__dict__)
    return module


def _launcher_main(workdir: str) -> NoReturn:
    path = os.path.join(workdir, "job")
    with open(path, "rb") as f:
        job = marshal.load(f)  # written by the grader (trusted); the program never sees this file
    os.unlink(path)
    vfd = job["status_fd"]
    try:
        for group in job.get("cgroups", ()):  # first: every process of the sandbox is born inside
            with open(os.path.join(group, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))
    except OSError as exc:
        os.write(vfd, f"E:sandbox setup failed: joining cgroup: {exc}\n".encode())
        os._exit(3)
    wire = load_wire(job.pop("wire"))
    features, errors = _unshare(set(job["features"]))
    for name in _PRELOAD_WEAK if job["uid"] is not None and "mountns" not in features else ["ctypes"]:
        try:
            __import__(name)
        except ImportError:
            pass
    _fork_and_wait(job, wall_s=job["wall_s"])
    # pid 1 of the new pid namespace (if any): mounts need root, and /proc must be mounted from inside. It then
    # forks the worker, so the program gets ordinary signal semantics (init ignores unhandled signals).
    try:
        workdir = _private_mounts(job, features, errors, workdir)
        _fork_and_wait(job)
        _confine(job, features, errors, workdir)
    except BaseException as exc:  # noqa: BLE001 - report any setup failure on the status channel
        os.write(vfd, f"E:sandbox setup failed: {type(exc).__name__}: {exc}\n".encode())
        os._exit(3)
    _serve(job, workdir, features, errors, wire)


class _WallClock(Exception):
    pass


def _fork_and_wait(job: dict[str, Any], wall_s: float | None = None) -> None:
    """Fork; the parent drops its pipe ends and the job, waits, and exits with the child's status.

    With `wall_s` (the launcher), the parent enforces the time limit itself: it kills and *reaps* the child,
    so a timeout leaves no orphan for an init that may never reap it, and exits with TIMEOUT_EXIT.
    """
    pid = os.fork()
    if pid == 0:
        return
    for key in ("status_fd", "call_fd", "reply_fd"):
        os.close(job[key])  # only the worker holds the pipes: its death is an end of stream for the runner
    job.clear()
    _libc().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # best effort: the pid namespace backs it up
    if wall_s is not None:

        def expire(signum: int, frame: Any) -> None:
            raise _WallClock

        signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, max(wall_s, 0.01))
    try:
        _, status = os.waitpid(pid, 0)
    except _WallClock:
        os.kill(pid, signal.SIGKILL)  # pid 1 of the namespace: the kernel takes every process in it along
        os.waitpid(pid, 0)
        os._exit(TIMEOUT_EXIT)
    os._exit(128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status))


def _libc() -> Any:
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        import ctypes

        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _unshare(wanted: set[str]) -> tuple[set[str], list[str]]:
    """Enter new namespaces; as non-root, via a user namespace mapping us to root inside it."""
    libc = _libc()
    got: set[str] = set()
    errors: list[str] = []
    flags = [(n, f) for n, f in NAMESPACES.items() if n in wanted]
    if os.geteuid() != 0:
        if "userns" not in wanted:
            return got, errors
        uid, gid = os.getuid(), os.getgid()
        try:
            _check(libc.unshare(_CLONE_NEWUSER), "unshare(user)")
            for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
                with open(f"/proc/self/{name}", "w") as f:
                    f.write(text)
            got.add("userns")
        except OSError as exc:
            errors.append(f"no user namespace ({exc}); no namespaces")
            return got, errors
    all_flags = sum(f for _, f in flags)
    if all_flags and libc.unshare(all_flags) == 0:
        got.update(n for n, _ in flags)
        return got, errors
    for name, flag in flags:
        if libc.unshare(flag) == 0:
            got.add(name)
        else:
            import ctypes

            errors.append(f"no {name} ({os.strerror(ctypes.get_errno())})")
    return got, errors


def _private_mounts(job: dict[str, Any], features: set[str], errors: list[str], workdir: str) -> str:
    """Hide the host, private tmpfs over world-writable dirs, a fresh /proc; returns the working directory."""
    import ctypes

    libc = _libc()
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    uid = _target_uid(job, features)

    def mount(src: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
        enc = [None if s is None else s.encode() for s in (src, target, fstype)]
        _check(
            libc.mount(enc[0], enc[1], enc[2], flags, None if data is None else data.encode()),
            f"mount {target}",
        )

    if "mountns" in features:
        try:
            mount(None, "/", None, _MS_REC | _MS_PRIVATE)  # nothing below propagates back to the host
        except OSError as exc:
            features.discard("mountns")
            errors.append(f"no private mounts ({exc})")
    if "mountns" in features:
        needed = [*sys.path, os.path.join(sys.base_prefix, "lib"), os.path.join(sys.prefix, "lib")]
        if _mask_host_dirs(needed, [*HIDDEN_DIRS, *job.get("hide", ())], uid is not None, mount):
            features.add("hidden_host_dirs")
        _hide_sockets(job.get("sockets", ()), mount)
        for d in RUNTIME_DIRS:
            if os.path.isdir(d) and not os.path.islink(d):
                mount("tmpfs", d, "tmpfs", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, "size=65536,mode=755")
        features.add("hidden_run")
        tmp_size = job["limits"]["tmpfs_bytes"]
        for d in _WORLD_WRITABLE:
            if os.path.isdir(d) and not os.path.islink(d):
                size = tmp_size if d == "/tmp" else 1 << 20
                mount("tmpfs", d, "tmpfs", _MS_NOSUID | _MS_NODEV, f"size={size},mode=1777")
        features.add("private_tmp")
        if "pidns" in features:
            try:
                mount("proc", "/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)
                features.add("private_proc")
            except OSError as exc:
                errors.append(f"no private /proc ({exc})")
        workdir = "/tmp/work"
        os.mkdir(workdir, 0o700)
    return workdir


def _hide_sockets(paths: Iterable[str], mount: Any) -> None:
    """Bind /dev/null over each host Unix socket (as listed by the grader from /proc/net/unix): connecting to
    it then fails. Sockets under directories that get covered anyway are skipped by the grader."""
    import stat

    for path in paths:
        try:
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                mount("/dev/null", path, None, _MS_BIND)
        except OSError:
            pass  # gone since it was listed, or on a path we cannot reach: nothing to hide


def _target_uid(job: dict[str, Any], features: set[str]) -> int | None:
    return job["uid"] if os.geteuid() == 0 and "userns" not in features else None


def _confine(job: dict[str, Any], features: set[str], errors: list[str], workdir: str) -> None:
    """In the worker: fresh uid, no new privileges, parent-death signal, rlimits, clean environment."""
    import resource

    libc = _libc()
    uid = _target_uid(job, features)
    if uid is not None:
        os.chown(workdir, uid, uid)
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        features.add("uid_switch")
    _check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(no_new_privs)")
    _check(libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(pdeathsig)")
    # Not dumpable: processes it starts (same uid) cannot read its memory through /proc/<pid>/mem.
    _check(libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0), "prctl(dumpable)")
    lim = job["limits"]
    for name, res, value in (
        ("cpu", resource.RLIMIT_CPU, job["cpu_s"]),
        ("memory", resource.RLIMIT_AS, lim["memory_bytes"]),
        ("file size", resource.RLIMIT_FSIZE, lim["file_bytes"]),
        ("open files", resource.RLIMIT_NOFILE, lim["open_files"]),
        ("processes", resource.RLIMIT_NPROC, lim["processes"]),
        ("core", resource.RLIMIT_CORE, 0),
    ):
        soft, hard = clamp_rlimit(res, value, value + 1 if res == resource.RLIMIT_CPU else value)
        if soft < value:
            errors.append(f"{name} limit clamped to the host's hard limit {soft}")
        resource.setrlimit(res, (soft, hard))
    features.add("rlimits")
    os.chdir(workdir)
    os.environ.clear()
    os.environ.update(CLEAN_ENV, HOME=workdir, TMPDIR=workdir)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # partial output survives a kill


def clamp_rlimit(res: int, soft: int, hard: int) -> tuple[int, int]:
    """`(soft, hard)` lowered to the current hard limit: an unprivileged process may not raise it (CPU: SIGXCPU
    at the soft limit, SIGKILL at the hard one)."""
    import resource

    cur_hard = resource.getrlimit(res)[1]
    if cur_hard != resource.RLIM_INFINITY:
        soft, hard = min(soft, cur_hard), min(hard, cur_hard)
    return soft, hard


def _mask_host_dirs(needed: Iterable[str], hide: Iterable[str], uid_switch: bool, mount: Any) -> list[str]:
    """Cover host directories with empty tmpfs, binding back only what the interpreter needs; returns the covers.

    Two reasons to cover a directory: it holds data the program has no business reading (home directories,
    the repository, datasets with reference solutions), or it blocks the sandbox uid on the way to the
    interpreter's own files (e.g. a pyenv Python under /root, mode 700). The needed directories are bound back
    at their original paths, so imports keep working and nothing else there is visible.
    """
    import stat

    targets = sorted({os.path.realpath(p) for p in needed if p and os.path.isdir(p)})
    covers = {
        real
        for h in hide
        if os.path.isdir(h)
        and (real := os.path.realpath(h)) != "/"
        and real not in targets
        and not (real + "/").startswith(_SYSTEM_DIRS)
    }
    if uid_switch:
        for t in targets:
            parts = t.strip("/").split("/")
            for i in range(1, len(parts)):
                anc = "/" + "/".join(parts[:i])
                if not os.stat(anc).st_mode & stat.S_IXOTH:
                    covers.add(anc)
                    break
    covers = {c for c in covers if not any(c.startswith(o + "/") for o in covers)}
    plan = []
    for cover in sorted(covers):
        under = [t for t in targets if t.startswith(cover + "/")]
        under = [t for t in under if not any(t.startswith(o + "/") for o in under)]
        plan.append(
            (cover, [(t, os.open(t, os.O_RDONLY | os.O_DIRECTORY)) for t in under])
        )  # before covering
    for cover, binds in plan:
        mount("tmpfs", cover, "tmpfs", _MS_NOSUID | _MS_NODEV, "size=65536,mode=755")
        for t, fd in binds:
            os.makedirs(t, 0o755, exist_ok=True)
            mount(f"/proc/self/fd/{fd}", t, None, _MS_BIND | _MS_REC)
            os.close(fd)
    return sorted(covers)


def _audit_hook(features: set[str], workdir: str) -> Any:
    """Weak isolation only: an audit hook standing in for the namespaces the kernel refused (not a wall)."""
    blocked: set[str] = set()
    if "netns" not in features:
        blocked |= {"socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo"}
        features.add("audit_net")
    if "uid_switch" not in features and "pidns" not in features:
        blocked |= {"os.kill", "os.killpg", "signal.pthread_kill"}
        features.add("audit_kill")
    confine_writes = "private_tmp" not in features
    if confine_writes:
        features.add("audit_fs")
    if not features & {"audit_net", "audit_kill", "audit_fs"}:
        return None
    blocked |= {"os.exec", "os.posix_spawn", "os.spawn", "os.system", "subprocess.Popen", "pty.spawn"}
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    path_events = frozenset(
        "os.mkdir os.rename os.remove os.rmdir os.symlink os.link os.truncate os.chmod os.chown os.utime".split()
    )
    home = os.path.realpath(workdir) + "/"
    _realpath, _join, _getcwd, _fsdecode, _isinstance = (
        os.path.realpath,
        os.path.join,
        os.getcwd,
        os.fsdecode,
        isinstance,
    )

    def outside(path: Any) -> bool:
        if _isinstance(path, int):
            return False  # an already open descriptor; opening it was checked
        return not (_realpath(_join(_getcwd(), _fsdecode(path))) + "/").startswith(home)

    def audit(event: str, args: tuple[Any, ...]) -> None:
        if event in blocked or event.startswith("ctypes."):
            raise PermissionError("sandbox: " + event + " is not allowed")
        if confine_writes and event == "open" and args and _isinstance(args[0], (str, bytes)):
            flags = args[2] if len(args) > 2 and _isinstance(args[2], int) else 0
            if flags & write_flags and outside(args[0]):
                raise PermissionError("sandbox: writing outside the working directory is not allowed")
        if confine_writes and event in path_events:
            targets = args[:2] if event in ("os.rename", "os.symlink", "os.link") else args[:1]
            for target in targets:
                if _isinstance(target, (str, bytes, int)) and outside(target):
                    raise PermissionError("sandbox: changing files outside the working directory is not allowed")

    return audit


def _serve(job: dict[str, Any], workdir: str, features: set[str], errors: list[str], wire: Any) -> NoReturn:
    """Load the program, then answer calls from the test runner until it hangs up. Never returns.

    Protocol (frames of `wire`): first {"ready": [callable global names], "values": [other global names]} or
    {"load": "why it failed"}; then for each ["call", name, args, kwargs] (or ["get", name], a global's value)
    one of {"r": value}, {"x": [exception type, message]} or {"bad": why the result is not plain data}.
    """
    import builtins
    import types

    call_fd, reply_fd, status_fd = job["call_fd"], job["reply_fd"], job["status_fd"]
    program = job["program"]
    job.clear()
    hook = _audit_hook(features, workdir)
    os.write(status_fd, b"I:" + wire.dumps({"features": sorted(features), "errors": errors}) + b"\n")
    os.close(status_fd)  # the program cannot report a setup failure in the grader's name
    if hook is not None:
        sys.addaudithook(hook)

    def describe(exc: BaseException) -> str:
        try:
            text = str(exc)[:300]
        except BaseException:  # noqa: BLE001 - the program's own __str__ may raise anything
            text = "<unprintable>"
        return type(exc).__name__ + (": " + text if text else "")

    def reply(message: Any) -> None:
        try:
            payload = wire.dumps(message)
            if len(payload) > wire.MAX_FRAME:
                payload = wire.dumps({"bad": f"result of {len(payload)} bytes is over the cap"})
        except wire.WireError as exc:
            payload = wire.dumps({"bad": str(exc)})
        wire.write_frame(reply_fd, payload)

    namespace: dict[str, Any] = {"__name__": "__program__", "__builtins__": builtins}
    try:
        exec(compile(program, "<program>", "exec"), namespace)
    except BaseException as exc:  # noqa: BLE001 - any failure to load is the program's
        _flush()
        reply({"load": describe(exc)})
        os._exit(0)
    names = [k for k, v in list(namespace.items()) if type(k) is str and not k.startswith("__")]
    callables = [k for k in names if callable(namespace[k]) and not isinstance(namespace[k], types.ModuleType)]
    reply({"ready": callables, "values": [k for k in names if k not in callables]})
    while True:
        _flush()
        frame = wire.read_frame(call_fd)
        if frame is None:
            os._exit(0)
        try:
            request = wire.loads(frame)
            if request[0] == "get":
                result = namespace[request[1]]
            else:
                _, name, args, kwargs = request
                result = namespace[name](*wire.decode(args), **wire.decode(kwargs))
            try:
                message = {"r": wire.encode(result)}
            except wire.WireError as exc:
                message = {"bad": str(exc)}
        except BaseException as exc:  # noqa: BLE001 - the call's outcome, whatever it is, goes to the runner
            message = {"x": [type(exc).__name__, describe(exc)]}
        reply(message)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001 - the program may have replaced or closed its streams
            pass


if __name__ == "__main__":
    _launcher_main(sys.argv[1])
