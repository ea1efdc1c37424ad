"""The trusted side of a code grade: run the tests, calling into the sandboxed program over pipes.

The grader (`code.py`) starts `python -I -S testrunner.py <job file>` next to the sandbox (`sandbox.py`). This
process never holds model-written code: it executes the dataset's tests (and the trusted context, e.g. HumanEval's
prompt with helpers such as `poly`) in its own namespace, where each name the program is asked to provide is a
proxy that sends the call's arguments to the sandbox as plain data and returns the plain data that comes back
(`wire.py`); a global of the program's that is not a function arrives as its value, if that is plain data. HumanEval's `check(candidate)` receives such a proxy; assert-list tests (MBPP) see the entry point
bound to one. Builtins and names the tests or the context define are never taken from the program, so nothing
the program defines can shadow what the tests use, and no object of the program's exists here to compare equal
to everything.

The verdict goes to the grader on a pipe the sandbox never holds: one line, "P" (every test ran and passed),
"F:<why>" (a test failed, the program broke the protocol or ended), "E:<why>" (the program did not load or lacks
the entry point; an unusable test), or "C:<why>" (the sandbox hung up before the tests finished: the grader
consults its exit status).
"""

from __future__ import annotations

import builtins
import marshal
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

# Modules the tests may name without importing them (MBPP tests lean on the reference solution's imports);
# imported here, from the trusted interpreter, when a test names one and nothing else defines it.
AUTO_IMPORTS = frozenset(
    "array bisect cmath collections copy datetime decimal fractions functools heapq itertools json math operator "
    "random re statistics string sys time".split()
)
# Exceptions a program function may raise that are re-raised here as themselves (tests may expect them). The
# rest become RuntimeError: StopIteration, for one, would end a `map(candidate, ...)` early and silently.
_FORWARDED = frozenset(
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type)
    and issubclass(value, Exception)
    and not issubclass(value, (StopIteration, StopAsyncIteration, Warning))
)


class ProtocolBroken(BaseException):  # noqa: N818 - BaseException: `except Exception` in a test cannot swallow it
    """The program answered with something that is not plain data, or hung up."""


def main(job_path: str) -> NoReturn:
    with open(job_path, "rb") as f:
        job = marshal.load(f)  # written by the grader
    os.unlink(job_path)
    verdict_fd = job["verdict_fd"]
    try:
        _limit(job)
        wire = _load_wire(job.pop("wire"))
        kind, why = _run(job, wire)
    except BaseException as exc:  # noqa: BLE001 - the runner itself failed: the grader treats it as such
        kind, why = "E", f"test runner failed: {type(exc).__name__}: {exc}"
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001
            pass
    os.write(verdict_fd, (kind + (":" + why[:1500] if why else "") + "\n").encode("utf-8", "replace"))
    os._exit(0)


def _limit(job: dict[str, Any]) -> None:
    import resource

    for res, value in ((resource.RLIMIT_AS, job["memory_bytes"]), (resource.RLIMIT_CPU, job["cpu_s"])):
        hard = resource.getrlimit(res)[1]
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(res, (value, hard))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if job.get("undumpable"):  # a program of the same uid could otherwise open /proc/<runner>/fd/<verdict pipe>
        import ctypes

        if ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0) != 0:  # PR_SET_DUMPABLE
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE) failed")


def _load_wire(code: Any) -> Any:
    """The `wire` module from its code object (compiled by the grader, passed in the job)."""
    import types

    module = types.ModuleType("rlvr_wire")
    exec(code, module.__dict__)
    return module


def _names(code: Any) -> set[str]:
    """Every name a code object (and the functions and classes inside it) may look up."""
    out = set(code.co_names)
    for const in code.co_consts:
        if hasattr(const, "co_names"):
            out |= _names(const)
    return out


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return type(exc).__name__ + (": " + text[:300] if text else "")


def _run(job: dict[str, Any], wire: Any) -> tuple[str, str]:
    call_fd, reply_fd = job["call_fd"], job["reply_fd"]
    tests, entry, context = job["tests"], job["entry_point"], job["context"]
    broken: list[str] = []

    def receive() -> Any:
        try:
            frame = wire.read_frame(reply_fd)
        except wire.WireError as exc:
            broken.append(f"program's reply is unusable: {exc}")
            raise ProtocolBroken(broken[0]) from None
        if frame is None:
            broken.append("C")
            raise ProtocolBroken("the program's process ended")
        try:
            message = wire.loads(frame)
            if type(message) is not dict or not message:
                raise wire.WireError("not a reply")
            return message
        except wire.WireError as exc:
            broken.append(f"program's reply is unusable: {exc}")
            raise ProtocolBroken(broken[0]) from None

    hello = receive_first(receive)
    if isinstance(hello[0], str):
        return hello  # type: ignore[return-value]
    provided, values = hello

    def fetch(name: str) -> tuple[bool, Any]:
        """A global value of the program's, if it is plain data."""
        wire.write_frame(call_fd, wire.dumps(["get", name]))
        message = receive()
        if "r" not in message:
            return False, None
        try:
            return True, wire.decode(message["r"])
        except wire.WireError:
            return False, None

    def proxy(name: str) -> Any:
        def candidate(*args: Any, **kwargs: Any) -> Any:
            if broken:
                raise ProtocolBroken(broken[0])
            try:
                request = wire.dumps(["call", name, wire.encode(list(args)), wire.encode(kwargs)])
            except wire.WireError as exc:
                raise TypeError(f"cannot pass this argument to the program: {exc}") from None
            try:
                wire.write_frame(call_fd, request)
            except OSError:
                broken.append("C")
                raise ProtocolBroken("the program's process ended") from None
            message = receive()
            if "r" in message:
                try:
                    return wire.decode(message["r"])
                except wire.WireError as exc:
                    broken.append(f"{name} returned something that is not plain data: {exc}")
                    raise ProtocolBroken(broken[-1]) from None
            if "x" in message and type(message["x"]) is list and len(message["x"]) == 2:
                kind, text = (str(x)[:400] for x in message["x"])
                cls = getattr(builtins, kind) if kind in _FORWARDED else RuntimeError
                raise cls(f"in the program: {text}")
            why = str(message.get("bad", "unexpected reply"))[:400]
            broken.append(f"{name} returned something that is not plain data: {why}")
            raise ProtocolBroken(broken[-1])

        candidate.__name__ = candidate.__qualname__ = name
        return candidate

    namespace: dict[str, Any] = {"__name__": "__tests__", "__builtins__": builtins}
    if context:
        try:
            exec(compile(context, "<context>", "exec"), namespace)
        except BaseException as exc:  # noqa: BLE001 - trusted text that does not run: an unusable task
            return "E", "test context failed: " + _describe(exc)
    statements = [tests] if isinstance(tests, str) else list(tests)
    try:
        compiled = [compile(s, "<tests>" if isinstance(tests, str) else f"<test {i}>", "exec")
                    for i, s in enumerate(statements)]
    except SyntaxError as exc:
        return "E", "tests do not compile: " + _describe(exc)
    free = set().union(*(_names(c) for c in compiled)) if compiled else set()
    for name in sorted(free):
        if name in namespace or hasattr(builtins, name):
            continue  # the program never shadows a builtin or anything the context defines
        if name in AUTO_IMPORTS:
            namespace[name] = __import__(name)
        elif name in provided:
            namespace[name] = proxy(name)
        elif name in values:
            try:
                ok, value = fetch(name)
            except ProtocolBroken:
                return ("C", "") if broken[0] == "C" else ("F", broken[0])
            if ok:
                namespace[name] = value
    if entry:
        if entry not in provided:
            return "E", f"entry point {entry!r} is not defined"
        namespace[entry] = proxy(entry)

    def outcome(what: str, exc: BaseException) -> tuple[str, str]:
        if broken:
            return ("C", "") if broken[0] == "C" else ("F", broken[0])
        return "F", what + _describe(exc)

    if isinstance(tests, str):
        try:
            exec(compiled[0], namespace)
        except BaseException as exc:  # noqa: BLE001
            return outcome("tests failed: ", exc)
        check = namespace.get("check")
        if entry and callable(check):
            try:
                check(proxy(entry))
            except BaseException as exc:  # noqa: BLE001
                return outcome("check failed: ", exc)
    else:
        for i, (stmt, code) in enumerate(zip(statements, compiled, strict=True)):
            try:
                exec(code, namespace)
            except BaseException as exc:  # noqa: BLE001
                return outcome(f"test {i} failed: {stmt.strip()[:200]}: ", exc)
    if broken:  # a failure the tests caught and swallowed still fails the run
        return ("C", "") if broken[0] == "C" else ("F", broken[0])
    return "P", ""


def receive_first(receive: Any) -> tuple[frozenset[str], frozenset[str]] | tuple[str, str]:
    """The program's hello: the functions and the other globals it has, or the verdict when it did not load."""
    try:
        hello = receive()
    except ProtocolBroken as exc:
        return ("C", "") if str(exc) == "the program's process ended" else ("F", str(exc))
    if "load" in hello:
        return "E", "program failed to load: " + str(hello["load"])[:600]
    names, values = hello.get("ready"), hello.get("values", [])
    if not all(type(x) is list and all(type(n) is str for n in x) for x in (names, values)):
        return "F", "program's hello is unusable"
    return frozenset(names), frozenset(values)


if __name__ == "__main__":
    main(sys.argv[1])
