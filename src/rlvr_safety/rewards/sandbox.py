"""Run untrusted Python against tests in an isolated, resource-limited child process.

Model-written code is hostile by assumption: RL optimises against the grader, so anything the grader lets a
program do (exit early, print "passed", patch `check`, return an object equal to everything) will be found.

Layout. The grader (`rlvr_safety.rewards.code.run_tests`) starts `python -I -S sandbox.py <dir>` (this file: the
child side only, kept to a few light stdlib imports because every run pays for them) as a *launcher* in a new
session with a scrubbed environment. The launcher reads the job from a root-only file and deletes it, unshares
network, mount, pid and IPC namespaces (as root directly, otherwise inside a user namespace), and forks pid 1
of the new pid namespace, which it kills and reaps itself when the wall clock runs out. Pid 1 mounts private
tmpfs over the world-writable directories (the working directory lives there) and a fresh /proc, and forks the
worker (so the program gets ordinary signal semantics). The worker switches to a random unprivileged uid,
sets rlimits (CPU, address space, file size, open files, processes, no core dumps), no-new-privs, non-dumpable
and a parent-death signal, and runs the *harness* in-process (no exec: the interpreter is already loaded): build
the program's namespace, run the tests, and only if everything passed write a per-run random nonce to a
dedicated pipe. The grader counts a pass only for exactly that nonce plus exit status 0. When pid 1 dies the
kernel kills everything left in the namespace, forks and setsid'd processes included.

Where the kernel refuses a namespace (e.g. a container without CAP_SYS_ADMIN and without user namespaces), the
run goes on with what is available and says so in `CodeResult.isolation`; the harness's audit hook then stands
in (audit_net / audit_fs / audit_kill: no sockets, no writes outside the working directory, no signals, no new
executables), which is a speed bump rather than a wall.

Residual risk (documented, not solved): the program runs in the harness's interpreter, so with enough effort it
can inspect the harness's memory and find the nonce. An audit hook raises on the obvious routes (frame and gc
introspection, tracing, ctypes, /proc/*/mem), captured references make rebinding `check`, `AssertionError`,
`sys.exit` or builtins useless, and return values must be plain data so an object whose `__eq__` always says
True does not pass; but CPython has no in-process security boundary. The OS isolation above is the boundary:
at worst such a program earns a reward it did not deserve, it cannot escape. The program can read files that
are world-readable on the host (the repository, the datasets): hide answer files from it if that matters.
"""

from __future__ import annotations

import json
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
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_BIND, _MS_REC, _MS_PRIVATE = 2, 4, 8, 4096, 16384, 1 << 18
_PR_SET_PDEATHSIG, _PR_SET_DUMPABLE, _PR_SET_NO_NEW_PRIVS = 1, 4, 38
_WORLD_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/var/lock")
# Covered by empty tmpfs in the sandbox (plus the grader's cwd and checkout): homes, project and data trees.
HIDDEN_DIRS = ("/home", "/root", "/work", "/workspace", "/mnt", "/media", "/srv", "/data", "/opt")
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
# Imported before privileges drop (the interpreter's files may be unreadable for the sandbox uid) and before the
# snapshot that decides which classes count as plain data and which module attributes must stay untouched.
_PRELOAD = (
    "bisect collections collections.abc copy ctypes datetime decimal fractions functools heapq itertools json "
    "math operator random re resource string"
).split()
# Without a mount namespace the sandbox uid may not reach the interpreter's files at all: import more up front.
_PRELOAD_EXTRA = (
    "abc array ast base64 binascii bz2 calendar cmath contextlib copyreg csv dataclasses difflib enum fnmatch "
    "glob gzip hashlib inspect io lzma numbers pathlib pickle pprint queue secrets select shutil socket "
    "statistics struct subprocess tempfile textwrap threading time tokenize types typing unicodedata uuid "
    "weakref zlib"
).split()


def _launcher_main(workdir: str) -> NoReturn:
    path = os.path.join(workdir, "job.json")
    with open(path, encoding="utf-8") as f:
        job = json.load(f)
    os.unlink(path)  # the nonce exists only in this process from here on
    vfd = job["verdict_fd"]
    features, errors = _unshare(set(job["features"]))
    extra = _PRELOAD_EXTRA if job["uid"] is not None and "mountns" not in features else []
    for name in [*_PRELOAD, *extra]:
        try:
            __import__(name)
        except ImportError:
            pass
    _fork_and_wait(vfd, job, wall_s=job["wall_s"])
    # pid 1 of the new pid namespace (if any): mounts need root, and /proc must be mounted from inside. It then
    # forks the worker, so the program gets ordinary signal semantics (init ignores unhandled signals).
    try:
        workdir = _private_mounts(job, features, errors, workdir)
        _fork_and_wait(vfd, job)
        _confine(job, features, workdir)
    except BaseException as exc:  # noqa: BLE001 - report any setup failure on the verdict channel
        os.write(vfd, f"E:sandbox setup failed: {type(exc).__name__}: {exc}\n".encode())
        os._exit(3)
    _harness(job, workdir, features, errors)


TIMEOUT_EXIT = 124


class _WallClock(Exception):
    pass


def _fork_and_wait(vfd: int, job: dict[str, Any], wall_s: float | None = None) -> None:
    """Fork; the parent drops its copy of the job, waits, and exits with the child's status.

    With `wall_s` (the launcher), the parent enforces the time limit itself: it kills and *reaps* the child,
    so a timeout leaves no orphan for an init that may never reap it, and exits with TIMEOUT_EXIT.
    """
    pid = os.fork()
    if pid == 0:
        return
    os.close(vfd)
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
    """Private tmpfs over world-writable dirs, a fresh /proc, the interpreter made reachable; returns the workdir."""
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


def _target_uid(job: dict[str, Any], features: set[str]) -> int | None:
    return job["uid"] if os.geteuid() == 0 and "userns" not in features else None


def _confine(job: dict[str, Any], features: set[str], workdir: str) -> None:
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
    for res, value in (
        (resource.RLIMIT_CPU, job["cpu_s"]),
        (resource.RLIMIT_AS, lim["memory_bytes"]),
        (resource.RLIMIT_FSIZE, lim["file_bytes"]),
        (resource.RLIMIT_NOFILE, lim["open_files"]),
        (resource.RLIMIT_NPROC, lim["processes"]),
        (resource.RLIMIT_CORE, 0),
    ):
        hard = value + 1 if res == resource.RLIMIT_CPU else value  # SIGXCPU first, SIGKILL a second later
        resource.setrlimit(res, (value, hard))
    features.add("rlimits")
    os.chdir(workdir)
    os.environ.clear()
    os.environ.update(CLEAN_ENV, HOME=workdir, TMPDIR=workdir)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # partial output survives a kill


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


class _Blocked(ValueError):  # ValueError: namedtuple/enum/typing already tolerate it from sys._getframe
    """An introspection route the sandboxed program may not take."""


def _harness(job: dict[str, Any], workdir: str, features: set[str], errors: list[str]) -> NoReturn:
    """Run program then tests; write the nonce only if all passed. Never returns.

    Everything used after the program starts is bound to a local first: the program shares this interpreter
    and may rebind module globals, builtins and stdlib attributes.
    """
    import builtins
    import types

    _type, _id, _len, _str, _dict, _list, _exec, _compile = type, id, len, str, dict, list, exec, compile
    _callable, _isinstance, _enumerate, _BaseException = callable, isinstance, enumerate, BaseException
    _hasattr = hasattr
    _write, _exit, _encode, _startswith = os.write, os._exit, str.encode, str.startswith
    _fsdecode, _realpath, _basename, _getcwd = os.fsdecode, os.path.realpath, os.path.basename, os.getcwd
    _join = os.path.join
    _modules, _Module, _Function, _blocked = sys.modules, types.ModuleType, types.FunctionType, _Blocked
    _tio_flush = type(sys.stdout).flush
    out, err = sys.stdout, sys.stderr
    vfd = job["verdict_fd"]
    nonce = _encode(job.pop("nonce") + "\n")
    program, tests, entry = job["program"], job["tests"], job["entry_point"]
    guard_returns = job["guard_returns"]
    job.clear()

    def flush() -> None:
        for stream in (out, err):
            try:
                _tio_flush(stream)
            except _BaseException:
                pass

    def finish(kind: str, msg: str) -> NoReturn:
        flush()
        try:
            _write(vfd, _encode(kind + ":" + msg[:1500] + "\n", "utf-8", "replace"))
        finally:
            _exit(1)

    def describe(exc: BaseException) -> str:
        try:
            text = _str(exc)
        except _BaseException:
            text = "<unprintable>"
        return _type(exc).__name__ + (": " + text[:300] if text else "")

    # Snapshots taken before any untrusted code runs.
    builtins_snapshot = _dict(builtins.__dict__)
    modules_snapshot = _dict(sys.modules)
    module_dicts = [
        (name, m.__dict__, _dict(m.__dict__))
        for name, m in sys.modules.items()
        if name not in ("__main__", "sys") and _isinstance(getattr(m, "__dict__", None), dict)
    ]
    trusted: list[type] = []
    seen: set[int] = set()
    stack: list[type] = [object]
    while stack:
        cls = stack.pop()
        if _id(cls) in seen:
            continue
        seen.add(_id(cls))
        trusted.append(cls)
        try:
            stack.extend(type.__subclasses__(cls))
        except TypeError:
            stack.extend(cls.__subclasses__())
    trusted_ids = frozenset(_id(c) for c in trusted)
    compare_slots = "__eq__ __ne__ __lt__ __le__ __gt__ __ge__ __hash__ __bool__ __len__".split()
    heap_slots = {
        _id(c): tuple(c.__dict__.get(s) for s in compare_slots) for c in trusted if c.__flags__ & (1 << 9)
    }
    containers = {_id(t): t for t in (list, tuple, set, frozenset, dict)}
    _dict_items = dict.items

    def plain(value: Any) -> str | None:
        """Why `value` is not plain data (an object of a class that existed before the program), or None."""
        todo = [value]
        visited: set[int] = set()
        kinds: dict[int, Any] = {}  # type id -> container base (or None), for types already vetted
        budget = 1_000_000  # beyond this many objects the rest is accepted unchecked
        while todo and budget > 0:
            budget -= 1
            v = todo.pop()
            t = _type(v)
            tid = _id(t)
            if tid not in kinds:
                if tid not in trusted_ids:
                    return "a " + _str(t.__name__) + " object defined by the program"
                kind = None
                for c in t.__mro__:
                    slots = heap_slots.get(_id(c))
                    if slots is not None and tuple(c.__dict__.get(s) for s in compare_slots) != slots:
                        return "class " + c.__name__ + " was modified"
                    if kind is None:
                        kind = containers.get(_id(c))
                kinds[tid] = kind
            kind = kinds[tid]
            if kind is None or _id(v) in visited:
                continue
            visited.add(_id(v))
            if kind is dict:
                for k, x in _dict_items(v):
                    todo.append(k)
                    todo.append(x)
            else:
                todo.extend(kind.__iter__(v))
        return None

    def checked(items: Any) -> Any:  # a returned iterator: every item it yields must be plain data as well
        for item in items:
            why = plain(item)
            if why is not None:
                raise TypeError("yielded value is not plain data: " + why)
            yield item

    def guard(fn: Any) -> Any:
        def guarded(*args: Any, **kwargs: Any) -> Any:
            result = fn(*args, **kwargs)
            why = plain(result)
            if why is not None:
                raise TypeError("return value is not plain data: " + why)
            if _hasattr(_type(result), "__next__"):
                return checked(result)
            return result

        return guarded

    blocked_events = set(
        {
            "sys._getframe",
            "sys._current_frames",
            "sys._current_exceptions",
            "sys.settrace",
            "sys.setprofile",
            "gc.get_objects",
            "gc.get_referrers",
            "gc.get_referents",
        }
    )
    blocked_attrs = frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_back"})

    memory_files = frozenset({"mem", "pagemap", "map_files", "maps", "smaps", "environ", "auxv"})

    # Degraded mode: where the kernel refused an isolation feature, the audit hook stands in for it. That is
    # a speed bump, not a wall (e.g. code that reaches C directly bypasses it), so it is recorded as "audit_*".
    if "netns" not in features:
        blocked_events |= {
            "socket.connect",
            "socket.bind",
            "socket.sendto",
            "socket.sendmsg",
            "socket.getaddrinfo",
        }
        features.add("audit_net")
    if "uid_switch" not in features and "pidns" not in features:
        blocked_events |= {"os.kill", "os.killpg", "signal.pthread_kill"}
        features.add("audit_kill")
    confine_writes = "private_tmp" not in features
    if confine_writes:
        features.add("audit_fs")
    if features & {"audit_net", "audit_kill", "audit_fs"}:  # a new executable would not carry the hook
        blocked_events |= {
            "os.exec",
            "os.posix_spawn",
            "os.spawn",
            "os.system",
            "subprocess.Popen",
            "pty.spawn",
        }
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    path_events = frozenset(
        "os.mkdir os.rename os.remove os.rmdir os.symlink os.link os.truncate os.chmod os.chown os.utime".split()
    )
    home = _realpath(workdir) + "/"

    def outside(path: Any) -> bool:
        if _isinstance(path, int):
            return False  # an already open descriptor; opening it was checked
        real = _realpath(_join(_getcwd(), _fsdecode(path)))
        return not _startswith(real + "/", home)

    def audit(event: str, args: tuple[Any, ...]) -> None:
        if event in blocked_events or _startswith(event, "ctypes."):
            raise _blocked("sandbox: " + event + " is not allowed")
        if event == "object.__getattr__" and _len(args) > 1 and args[1] in blocked_attrs:
            raise _blocked("sandbox: reading frames is not allowed")
        if event == "open" and args and _isinstance(args[0], (str, bytes)):
            path = _fsdecode(args[0])
            real = _realpath(_join(_getcwd(), path))
            if _basename(path) in memory_files or _basename(real) in memory_files:
                raise _blocked("sandbox: opening " + path + " is not allowed")
            flags = args[2] if _len(args) > 2 and _isinstance(args[2], int) else 0
            if confine_writes and flags & write_flags and outside(path):
                raise _blocked("sandbox: writing outside the working directory is not allowed")
        if confine_writes and event in path_events:
            targets = args[:2] if event in ("os.rename", "os.symlink", "os.link") else args[:1]
            for target in targets:
                if _isinstance(target, (str, bytes, int)) and outside(target):
                    raise _blocked("sandbox: changing files outside the working directory is not allowed")

    _write(vfd, b"I:" + json.dumps({"features": sorted(features), "errors": errors}).encode() + b"\n")
    sys.settrace(None)
    sys.setprofile(None)
    if "threading" in sys.modules:
        sys.modules["threading"].settrace(None)
    sys.addaudithook(audit)  # cannot be removed again

    # 1. The program.
    prog_ns: dict[str, Any] = {"__name__": "__program__", "__builtins__": builtins}
    try:
        _exec(_compile(program, "<program>", "exec"), prog_ns)
    except _BaseException as exc:
        finish("E", "program failed to load: " + describe(exc))

    # 2. The tests, in a namespace with pristine builtins and (optionally) guarded program functions.
    test_ns = _dict(prog_ns)
    test_ns["__builtins__"] = _dict(builtins_snapshot)
    test_ns["__name__"] = "__tests__"
    if guard_returns:
        for key, value in _list(prog_ns.items()):
            t = _type(value)
            if _callable(value) and not _isinstance(value, type) and t is not _Module:
                if t is _Function or t.__module__ not in ("typing", "builtins"):
                    test_ns[key] = guard(value)
    if _isinstance(tests, str):
        try:
            _exec(_compile(tests, "<tests>", "exec"), test_ns)
        except _BaseException as exc:
            finish("F", "tests failed: " + describe(exc))
        if entry is not None and _callable(test_ns.get("check")):
            if entry not in prog_ns or not _callable(prog_ns[entry]):
                finish("E", f"entry point {entry!r} is not defined")
            candidate = guard(prog_ns[entry]) if guard_returns else prog_ns[entry]
            try:
                test_ns["check"](candidate)
            except _BaseException as exc:
                finish("F", "check failed: " + describe(exc))
    else:
        for i, stmt in _enumerate(tests):
            try:
                _exec(_compile(stmt, f"<test {i}>", "exec"), test_ns)
            except _BaseException as exc:
                finish("F", f"test {i} failed: {stmt.strip()[:200]}: " + describe(exc))

    # 3. No stdlib rebinding (e.g. math.isclose = lambda *a: True) may have helped the tests along.
    for name, mod in _dict_items(modules_snapshot):
        if _modules.get(name) is not mod:
            finish("E", f"program replaced sys.modules[{name!r}]")
    for name, live, snap in module_dicts:
        for key, value in _dict_items(snap):
            if live.get(key, builtins_snapshot) is not value:
                finish("E", f"program rebound {name}.{key}")
    flush()
    _write(vfd, nonce)
    _exit(0)


if __name__ == "__main__":
    _launcher_main(sys.argv[1])
