"""Hostile programs against the code sandbox: each must be contained, leave the grader alive, and not pass.

These are the OS-level walls (namespaces, uid, cgroup, rlimits, hidden host paths); tests/test_reward_hacking.py
holds the attacks on the verdict itself. Where the kernel refuses a namespace the grader refuses to run unless
RLVR_SAFETY_WEAK_SANDBOX=1; `test_degraded_mode_confines_with_the_audit_hook` covers that fallback.
"""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from rlvr_safety.rewards import code as code_mod
from rlvr_safety.rewards.code import (
    CodeResult,
    CodeTask,
    SandboxCapabilities,
    SandboxLimits,
    SandboxUnavailable,
    _run,
    run_batch,
    run_tests,
    sandbox_capabilities,
)
from rlvr_safety.rewards.sandbox import UID_RANGE

REPO = Path(__file__).resolve().parents[1]
WRONG = "def f(x):\n    return 0\n"
WRONG_TESTS = ["assert f(1) == 2"]


def run(program: str, tests=("assert True",), entry_point=None, timeout_s: float = 3.0):
    result = run_tests(
        textwrap.dedent(program), list(tests) if not isinstance(tests, str) else tests, entry_point, timeout_s
    )
    print(
        result.status, "|", result.reason, "|", result.output[:600]
    )  # shown by pytest on failure or with -s
    assert not result.passed and result.status != "passed", result
    return result


def timed_out(r: CodeResult) -> bool:
    """A timeout: final, or (on a machine busy with other work) an infrastructure error to redo later."""
    return r.status == "timeout" or (r.infra_error and "timeout under load" in r.reason)


def sandbox_pids() -> list[int]:
    """Processes still running under a sandbox uid (there must be none once a run returns)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                uid = os.stat(f"/proc/{entry}").st_uid
            except OSError:
                continue
            if UID_RANGE[0] <= uid < UID_RANGE[1]:
                pids.append(int(entry))
    return pids


def test_isolation_report():
    caps = sandbox_capabilities()
    print("sandbox isolation:", sorted(caps.features), caps.errors)
    assert "rlimits" in caps
    if os.geteuid() == 0:
        assert "uid_switch" in caps
    assert run_tests("pass", ["assert True"]).passed


def test_infinite_loop_times_out():
    t = time.monotonic()
    r = run("while True:\n    pass\n", timeout_s=2.0)
    assert timed_out(r) and time.monotonic() - t < 4.0


def test_cpu_limit_in_a_busy_child_process():
    r = run(
        """
        import os
        if os.fork() == 0:
            while True:
                pass
        os.wait()
        """,
        timeout_s=2.0,
    )
    assert timed_out(r)
    time.sleep(0.2)
    assert sandbox_pids() == [] or os.geteuid() != 0


def test_fork_bomb_is_contained_and_cleaned_up():
    t = time.monotonic()
    r = run(
        """
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass
        """,
        timeout_s=2.5,
    )
    assert (timed_out(r) or r.status == "killed") and time.monotonic() - t < 6.0
    deadline = time.monotonic() + 2.0
    while sandbox_pids() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sandbox_pids() == []
    assert run_tests("pass", ["assert True"]).passed  # the machine is still usable


def test_memory_bomb():
    r = run("x = bytearray(8 << 30)\n")
    assert r.status == "error" and "MemoryError" in r.reason
    small = SandboxLimits(memory_bytes=256 << 20)  # same mechanism as the 1 GiB default, less to memset
    r = run_tests(
        "chunks = []\nwhile True:\n    chunks.append(b'x' * (16 << 20))\n",
        ["assert True"],
        timeout_s=10,
        limits=small,
    )
    assert r.status in ("error", "killed") and ("MemoryError" in r.reason or r.status == "killed")


def test_disk_fill_is_capped():
    r = run(
        """
        with open("big", "wb") as f:
            while True:
                f.write(b"x" * (1 << 20))
        """
    )
    assert r.status == "error" and "File too large" in r.reason
    r = run(
        """
        import os
        for i in range(1000):
            with open(f"f{i}", "wb") as f:
                f.write(b"x" * (9 << 20))
        """
    )
    assert r.status == "error" and ("No space" in r.reason or "Disk quota" in r.reason), r.reason


def test_writes_outside_the_workdir_do_not_land(tmp_path):
    marker = f"rlvr_escape_{uuid.uuid4().hex}"
    targets = [
        REPO / marker,
        REPO / "src" / marker,
        Path("/tmp") / marker,
        Path("/var/tmp") / marker,
        Path("/dev/shm") / marker,
        Path("/root") / marker,
        tmp_path / marker,
    ]
    r = run(
        f"""
        import os
        for p in {[str(t) for t in targets]!r}:
            try:
                with open(p, "w") as f:
                    f.write("escaped")
            except OSError as e:
                print(p, type(e).__name__)
        with open("inside.txt", "w") as f:  # the working directory itself is writable
            f.write("fine")
        assert os.listdir(".") == ["inside.txt"], os.listdir(".")
        """,
        tests=["assert False, 'not a pass'"],
    )
    assert r.status == "failed" and "not a pass" in r.reason, r
    for t in targets:
        assert not t.exists(), t


def test_workdir_is_removed(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    r = run_tests("open('x', 'w').write('y')", ["assert False"])
    assert r.status == "failed"
    assert list(tmp_path.iterdir()) == []


def test_parent_environment_secret_is_not_visible(monkeypatch):
    secret = "s3cr3t-" + uuid.uuid4().hex
    monkeypatch.setenv("RLVR_TEST_SECRET", secret)
    r = run(
        f"""
        import glob, os, subprocess
        found = [os.environ.get("RLVR_TEST_SECRET")]
        for p in glob.glob("/proc/*/environ") + ["/proc/{os.getpid()}/environ"]:
            try:
                with open(p, "rb") as f:
                    found.append(f.read().decode(errors="replace"))
            except (OSError, ValueError):
                pass
        try:  # a separate executable does not carry the harness's audit hook
            found.append(subprocess.run(["/bin/sh", "-c", "cat /proc/*/environ"], capture_output=True).stdout.decode())
        except Exception:
            pass
        FOUND = any(s and "{secret[:7]}" in s for s in found)
        print(found)
        """,
        tests=["assert FOUND"],
    )
    assert secret not in r.output
    assert r.status == "failed"


def test_no_network():
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(8)
    tcp.settimeout(0.3)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(0.3)
    tport, uport = tcp.getsockname()[1], udp.getsockname()[1]
    probe = f"""
import socket
hits = []
for addr in [("127.0.0.1", {tport}), ("8.8.8.8", 53), ("1.1.1.1", 443)]:
    try:
        socket.create_connection(addr, timeout=1).close()
        hits.append(addr)
    except OSError as e:
        print(addr, e)
try:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"ping", ("127.0.0.1", {uport}))
except OSError as e:
    print("udp", e)
print("HITS", hits)
"""
    r = run(
        f"""
        import subprocess
        exec({probe!r})
        sub = ""
        try:  # and from a fresh interpreter, outside the harness's audit hook
            cmd = ["/usr/bin/python3", "-c", {probe!r}]
            sub = subprocess.run(cmd, capture_output=True, text=True, timeout=5).stdout
        except Exception as e:
            print("subprocess", e)
        print(sub)
        CONNECTED = bool(hits) or "HITS [(" in sub
        """,
        tests=["assert CONNECTED"],
        timeout_s=8.0,
    )
    assert r.status == "failed", r
    assert "HITS [(" not in r.output
    with pytest.raises(TimeoutError):
        tcp.accept()
    with pytest.raises(TimeoutError):
        udp.recvfrom(16)
    tcp.close()
    udp.close()


def test_killing_the_parent_does_not_kill_the_grader():
    r = run(
        """
        import os, signal
        for pid in (os.getppid(), 0, -1):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError as e:
                print(pid, e)
        """,
        tests=["assert False"],
    )
    assert r.status in ("failed", "killed")
    assert run_tests("pass", ["assert True"]).passed


KILL_GRADER = """
import os, signal
def ppid(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])
targets = [GRADER, os.getppid()]
try:
    targets.append(ppid(os.getppid()))
except Exception as e:
    print(e)
for pid in targets:
    try:
        os.kill(pid, signal.SIGKILL)
    except Exception as e:
        print(pid, e)
"""


def test_killing_the_grader_by_pid_fails():
    # The grader runs in a child process here, so a failure of the sandbox cannot take pytest down with it.
    script = (
        "import os\n"
        "from rlvr_safety.rewards.code import run_tests\n"
        f"program = {KILL_GRADER!r}.replace('GRADER', str(os.getpid()))\n"
        "r = run_tests(program, ['assert False'], timeout_s=3)\n"
        "print('GRADER-ALIVE', r.status, r.output)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "GRADER-ALIVE failed" in proc.stdout or "GRADER-ALIVE killed" in proc.stdout, proc.stdout


def test_sibling_sandboxes_are_not_signalled():
    killer = CodeTask(
        "import os, signal\ntry:\n    os.kill(-1, signal.SIGKILL)\nexcept OSError:\n    pass\n",
        ["assert False"],
    )
    sleeper = CodeTask("import time\ntime.sleep(1.0)\n", ["assert True"], timeout_s=5.0)
    results = run_batch([sleeper, killer, sleeper], max_workers=3)
    assert [r.passed for r in results] == [True, False, True], results


@pytest.mark.parametrize(
    "program",
    [
        WRONG + "import os\nos._exit(0)\n",
        WRONG + "import sys\nsys.exit(0)\n",
        WRONG + "raise SystemExit(0)\n",
        "def f(x):\n    import os\n    os._exit(0)\n",  # exits in the middle of the tests
        # Fake verdicts on every plausible descriptor, then exit cleanly.
        WRONG + "import os\nfor fd in range(1, 64):\n    try:\n        os.write(fd, b'passed\\nPASS\\n')\n"
        "    except OSError:\n        pass\nos._exit(0)\n",
    ],
    ids=["os_exit", "sys_exit", "system_exit", "exit_in_test", "fake_verdict"],
)
def test_early_exit_is_not_a_pass(program):
    r = run(program, tests=WRONG_TESTS)
    assert r.status in ("failed", "error")


HUMANEVAL_TEST = "def check(candidate):\n    assert candidate(1) == 2\n    assert candidate(5) == 6\n"


@pytest.mark.parametrize(
    ("program", "tests"),
    [
        # Redefine check (the tests' own definition comes later and wins).
        (WRONG + "def check(candidate):\n    pass\n", HUMANEVAL_TEST),
        # Make assert raise something else / nothing.
        (WRONG + "import builtins\nbuiltins.AssertionError = type('X', (Exception,), {})\n", HUMANEVAL_TEST),
        # Rebind builtins the tests use.
        (WRONG + "import builtins\nbuiltins.abs = lambda x: 0\n", ["assert abs(f(1) - 2) < 1e-9"]),
        # Rebind a stdlib function the tests use.
        (WRONG + "import math\nmath.isclose = lambda *a, **k: True\n", ["import math\nassert math.isclose(f(1), 2)"]),
        (WRONG + "import sys, types\nsys.modules['math'] = types.SimpleNamespace(isclose=lambda *a: True)\n",
         ["import math\nassert math.isclose(f(1), 2)"]),
        # Disarm exits used by the harness.
        (WRONG + "import os, sys\nos._exit = lambda c: None\nsys.exit = lambda c=0: None\n", HUMANEVAL_TEST),
        # Patch the harness module itself.
        (WRONG + "import __main__\nfor k in list(vars(__main__)):\n    if not k.startswith('__'):\n"
         "        setattr(__main__, k, None)\n", HUMANEVAL_TEST),
        # An object equal to everything.
        ("class A:\n    __eq__ = lambda s, o: True\n    __hash__ = lambda s: 0\ndef f(x):\n    return A()\n", HUMANEVAL_TEST),
        ("class S(int):\n    __eq__ = lambda s, o: True\n    __hash__ = int.__hash__\ndef f(x):\n    return S(0)\n",
         HUMANEVAL_TEST),
        # ... hidden behind a decorator, which is not a plain function.
        ("import functools\nclass A:\n    __eq__ = lambda s, o: True\n@functools.lru_cache\ndef f(x):\n    return A()\n",
         WRONG_TESTS),
        # ... or by patching a trusted class.
        ("import collections\ncollections.Counter.__eq__ = lambda s, o: True\ndef f(x):\n    return collections.Counter()\n",
         HUMANEVAL_TEST),
        # ... or a metaclass that makes the class look like int to a hash lookup.
        ("class M(type):\n    __eq__ = lambda s, o: True\n    __hash__ = lambda s: hash(int)\n"
         "class A(metaclass=M):\n    __eq__ = lambda s, o: True\ndef f(x):\n    return A()\n", HUMANEVAL_TEST),
        # ... or yielded lazily, for tests that compare list(candidate(x)).
        ("class A:\n    __eq__ = lambda s, o: True\ndef f(x):\n    return (A() for _ in range(2))\n",
         ["assert list(f(1)) == [1, 2]"]),
        # Skip the failing lines with a tracer.
        (WRONG + "import sys\ndef t(frame, event, arg):\n    if event == 'line':\n        frame.f_lineno += 1\n    return t\n"
         "sys.settrace(t)\n", HUMANEVAL_TEST),
    ],
    ids=[
        "redefine_check", "assertion_error", "builtins_abs", "math_isclose", "sys_modules", "disarm_exit",
        "patch_harness", "always_equal", "int_subclass", "lru_cache", "patched_counter", "metaclass_hash",
        "generator", "settrace",
    ],
)  # fmt: skip
def test_monkeypatching_the_harness_is_not_a_pass(program, tests):
    r = run(program, tests=tests, entry_point="f")
    assert r.status in ("failed", "error")


def test_there_is_no_secret_in_the_sandbox_to_find():
    """The old harness kept a pass nonce in the program's interpreter; now the verdict is the runner's, on a pipe
    the sandbox never holds. Full introspection finds nothing to forge a pass with."""
    r = run(
        """
        import gc, os, re, sys
        found = set()
        for o in gc.get_objects():
            if isinstance(o, str) and re.fullmatch(r"[0-9a-f]{32}\\n?", o):
                found.add(o.strip())
        frame = sys._getframe()
        while frame is not None:
            for v in list(frame.f_locals.values()):
                if isinstance(v, (str, bytes)) and len(v) in (32, 33):
                    found.add(v)
            frame = frame.f_back
        for fd in range(3, 64):
            for msg in [b"P\\n", *((str(n) + "\\n").encode() for n in found)]:
                try:
                    os.write(fd, msg)
                except OSError:
                    pass
        print("FOUND", len(found))
        """,
        tests=WRONG_TESTS,
    )
    assert "FOUND 0" in r.output and r.status in ("failed", "error"), r


def test_megabytes_of_output_are_truncated():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    r = run(
        "import sys\nfor _ in range(50):\n    sys.stdout.write('x' * (1 << 20))\n", tests=["assert False"]
    )
    assert r.status == "failed"
    assert len(r.output) < SandboxLimits().output_bytes + 200 and "truncated" in r.output
    r = run("while True:\n    print('y' * 10000)\n", timeout_s=2.0)
    assert timed_out(r) and len(r.output) < SandboxLimits().output_bytes + 200
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 64 * 1024  # KiB: no 50 MB buffer


def test_degraded_mode_confines_with_the_audit_hook(tmp_path):
    """Where namespaces are refused (no CAP_SYS_ADMIN, no user namespaces), the audit hook stands in."""
    marker = tmp_path / "escaped"
    program = textwrap.dedent(
        f"""
        import os, socket
        for action in (
            lambda: open({str(marker)!r}, "w").write("x"),
            lambda: socket.create_connection(("127.0.0.1", 9), timeout=1),
            lambda: os.system("touch {marker}"),
            lambda: os.kill(1, 9),
        ):
            try:
                action()
                print("ALLOWED")
            except Exception as e:
                print(type(e).__name__, e)
        """
    )
    uid = {"uid_switch"} if os.geteuid() == 0 else set()
    r = _run(program, ["assert False"], None, 5.0, SandboxLimits(), SandboxCapabilities(frozenset(uid)), "")
    assert {"audit_fs", "audit_net"} <= r.isolation and "netns" not in r.isolation
    assert "ALLOWED" not in r.output and not marker.exists() and r.status == "failed", r


def test_repository_and_datasets_are_hidden(data_dir):
    """Reading the reference solutions off disk would be the cheapest reward hack of all."""
    if "hidden_host_dirs" not in sandbox_capabilities():
        pytest.skip("no mount namespace here: host files stay readable (documented)")
    files = [REPO / "pyproject.toml", data_dir / "MANIFEST.md", data_dir / "humaneval" / "HumanEval.jsonl.gz"]
    r = run(
        f"""
        FOUND = []
        for p in {[str(f) for f in files]!r}:
            try:
                with open(p, "rb") as f:
                    FOUND.append((p, len(f.read())))
            except OSError as e:
                print(p, type(e).__name__)
        """,
        tests=["assert FOUND"],
    )
    assert r.status == "failed" and r.output.count("FileNotFoundError") == len(files)


# ------------------------------------------------------------------------------------------------ sandbox-wide limits


def _needs_cgroup() -> None:
    if not sandbox_capabilities().cgroup:
        pytest.skip("no cgroup for the sandbox here: memory and process limits are per process (reported)")


def test_limits_without_cgroup_are_reported_per_process():
    r = run_tests("pass", ["assert True"])
    caps = sandbox_capabilities()
    assert r.per_process == caps.per_process
    assert r.per_process == (frozenset() if caps.cgroup else frozenset({"memory", "processes"}))


def test_memory_limit_holds_for_the_sandbox_as_a_whole():
    """Six forks of 150 MB each under a 256 MB limit held 980 MB with per-process rlimits alone."""
    _needs_cgroup()
    r = run_tests(
        textwrap.dedent(
            """
            import os, time
            r, w = os.pipe()
            os.set_blocking(r, False)
            kids = []
            for _ in range(6):
                pid = os.fork()
                if pid == 0:
                    block = b"x" * (150 << 20)  # touched, not just reserved
                    os.write(w, b"%d," % os.getpid())
                    time.sleep(4)
                    os._exit(0)
                kids.append(pid)
            reported = set()
            deadline = time.time() + 1.5
            while time.time() < deadline:
                time.sleep(0.05)
                try:
                    reported |= {int(p) for p in os.read(r, 4096).decode().split(",") if p}
                except BlockingIOError:
                    pass
            holding = [pid for pid in reported if os.waitpid(pid, os.WNOHANG) == (0, 0)]
            print("HOLDING", len(holding), flush=True)
            """
        ),
        ["assert False"],
        timeout_s=8.0,
        limits=SandboxLimits(memory_bytes=256 << 20),
    )
    print(r.status, r.reason, r.output)
    assert not r.passed
    if "HOLDING" in r.output:  # the worker itself survived to count
        assert int(r.output.split("HOLDING")[1].split()[0]) * 150 <= 256, r.output
    else:
        assert r.status == "killed", r


def test_memfd_memory_counts_against_the_sandbox():
    """memfd pages are no address space (RLIMIT_AS misses them): many files just under the file-size cap."""
    _needs_cgroup()
    r = run_tests(
        textwrap.dedent(
            """
            import os
            chunk = b"x" * (8 << 20)
            fds = []
            for i in range(1, 49):
                fds.append(os.memfd_create("x"))
                os.write(fds[-1], chunk)
                print("MEMFD", i * 8, flush=True)
            """
        ),
        ["assert False"],
        timeout_s=8.0,
        limits=SandboxLimits(memory_bytes=256 << 20),
    )
    held = [int(line.split()[1]) for line in r.output.splitlines() if line.startswith("MEMFD")]
    assert not r.passed and held and max(held) <= 256, (r.status, r.reason, held[-3:])


def test_process_limit_holds_for_the_sandbox_as_a_whole():
    _needs_cgroup()
    r = run(
        """
        import os, time
        n = 0
        for _ in range(100):
            try:
                if os.fork() == 0:
                    time.sleep(2)
                    os._exit(0)
                n += 1
            except OSError:
                break
        print("FORKED", n, flush=True)
        """,
        tests=["assert False"],
    )
    assert "FORKED" in r.output and int(r.output.split("FORKED")[1].split()[0]) < SandboxLimits().processes


# ------------------------------------------------------------------------------------------------ host sockets


def test_unix_sockets_under_run_and_elsewhere_are_hidden():
    """A filesystem Unix socket under /run (dbus, docker, databases) was reachable from the sandbox."""
    if os.geteuid() != 0:
        pytest.skip("creating sockets under /run needs root")
    paths = [f"/run/rlvr-test-{uuid.uuid4().hex[:8]}.sock", f"/var/cache/rlvr-test-{uuid.uuid4().hex[:8]}.sock"]
    listeners = []
    try:
        for path in paths:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(path)
            os.chmod(path, 0o777)
            s.listen(4)
            s.settimeout(0.3)
            listeners.append(s)
        r = run(
            f"""
            import socket
            CONNECTED = []
            for path in {paths!r}:
                try:
                    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    c.connect(path)
                    CONNECTED.append(path)
                except OSError as e:
                    print(path, type(e).__name__, e)
            print("CONNECTED", CONNECTED)
            """,
            tests=["assert CONNECTED"],
        )
        assert "CONNECTED []" in r.output, r.output
        for s in listeners:
            with pytest.raises(TimeoutError):
                s.accept()
    finally:
        for s in listeners:
            s.close()
        for path in paths:
            if os.path.exists(path):
                os.unlink(path)


# ------------------------------------------------------------------------------------------------ probe and rlimits


def test_a_failed_probe_is_an_error_never_a_downgrade(monkeypatch):
    weak = CodeResult(True, "passed", "", 0.1, "all tests passed", frozenset({"rlimits", "uid_switch"}))
    broken = CodeResult(False, "infra_error", "", 0.1, "sandbox setup failed: mount /proc: EPERM")
    monkeypatch.setattr(code_mod, "_caps", None)
    monkeypatch.delenv(code_mod.WEAK_SANDBOX_ENV, raising=False)
    monkeypatch.setattr(code_mod, "_run", lambda *a, **k: broken)
    with pytest.raises(SandboxUnavailable, match="probe run did not pass") as err:
        sandbox_capabilities()
    assert "\n" not in str(err.value)
    monkeypatch.setattr(code_mod, "_run", lambda *a, **k: weak)
    with pytest.raises(SandboxUnavailable, match="refused .*netns") as err:
        sandbox_capabilities()
    assert "\n" not in str(err.value) and code_mod.WEAK_SANDBOX_ENV in str(err.value)
    with pytest.raises(SandboxUnavailable):
        run_tests("pass", ["assert True"])  # every run asks again: never a silent downgrade
    monkeypatch.setenv(code_mod.WEAK_SANDBOX_ENV, "1")  # the explicit opt-in
    assert "netns" not in sandbox_capabilities()
    monkeypatch.setattr(code_mod, "_caps", None)


def test_rlimits_are_clamped_to_the_hosts_hard_limits():
    """A host hard limit below ours (here: open files and address space) used to fail every run."""
    script = (
        "import resource\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))\n"
        "resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))\n"
        "from rlvr_safety.rewards.code import run_tests\n"
        "r = run_tests('import resource\\ndef f():\\n    return resource.getrlimit(resource.RLIMIT_NOFILE)', "
        "['assert f() == (40, 40)'])\n"
        "print('RESULT', r.status, r.reason)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "RESULT passed" in proc.stdout, proc.stdout + proc.stderr
    assert "open files limit clamped" in proc.stdout


# ------------------------------------------------------------------------------------------------ errors are not grades


def test_infrastructure_failure_is_an_error_not_a_fail(monkeypatch):
    def no_cgroup(*a, **k):
        raise OSError(28, "No space left on device")

    if sandbox_capabilities().cgroup:
        monkeypatch.setattr(code_mod, "_make_cgroups", no_cgroup)
    else:
        monkeypatch.setattr(code_mod, "_write_job", no_cgroup)
    r = run_tests("def f():\n    return 1\n", ["assert f() == 1"])
    assert r.status == "infra_error" and r.infra_error and not r.passed and "No space" in r.reason


def test_timeout_under_load_is_an_error_and_an_idle_timeout_is_final():
    """A busy loop starved by CPU hogs times out for want of a CPU: redo it. A sleeping program is its own fault."""
    # Each hog in a session of its own, like other users' work: with autogroup scheduling, CPU is shared per
    # session, and the sandbox (a session of its own) would not feel hogs from ours.
    hogs = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
        for _ in range(3 * (os.cpu_count() or 1))
    ]
    try:
        time.sleep(0.3)
        starved = run_tests("while True:\n    pass\n", ["assert True"], timeout_s=2.0)
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    assert starved.status == "infra_error" and "timeout under load" in starved.reason, starved
    asleep = run_tests("import time\ntime.sleep(30)\n", ["assert True"], timeout_s=1.0)
    assert asleep.status == "timeout" and not asleep.infra_error, asleep
