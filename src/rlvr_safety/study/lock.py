"""One study per folder at a time: an exclusive flock on `study.lock` while a study runs in it.

The lock file holds who took it (pid, host, start time, as JSON) so a second process can say who is in the way.
The lock is the operating system's (fcntl.flock): it goes away with the process that held it, so a killed study
never leaves a stale lock behind and `--resume` works at once. A child made by fork closes its copy of the lock's
descriptor at once, so a leftover child of a killed study does not keep the folder locked. On a system without
fcntl there is no lock.
"""

from __future__ import annotations

import json
import os
import socket
import time
import weakref
from pathlib import Path
from types import TracebackType

from ..errors import UserError

LOCK_NAME = "study.lock"
_HELD: weakref.WeakSet[StudyLock] = weakref.WeakSet()


def _drop_in_child() -> None:
    """After fork, in the child: close the inherited lock descriptors (closing, not unlocking, leaves the
    parent's lock in place)."""
    for lock in list(_HELD):
        if lock._fd is not None:
            try:
                os.close(lock._fd)
            except OSError:
                pass
            lock._fd = None
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_drop_in_child)


class StudyLock:
    """`with StudyLock(folder):` holds the folder for this process or raises UserError naming the holder."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _describe(fd)
            os.close(fd)
            raise UserError(f"study folder {self.folder} is in use by {holder}; wait for it to finish or stop it, "
                            "then rerun (with --resume to continue)") from None
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "since": time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime())}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd
        _HELD.add(self)

    def release(self) -> None:
        if self._fd is None:
            return
        import fcntl

        _HELD.discard(self)

        try:
            os.ftruncate(self._fd, 0)  # no stale holder text once the study is done
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> StudyLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def _describe(fd: int) -> str:
    """'pid N on host H since T' from the lock file, or a plain phrase while the holder is still writing it."""
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        pid, host, since = int(info["pid"]), str(info["host"]), str(info["since"])
    except (ValueError, KeyError, TypeError, OSError):
        return "another process"
    gone = host == socket.gethostname() and not _alive(pid)
    return f"pid {pid} on host {host} since {since}" + (
        " (that pid has exited: a process it started still holds the folder; stop it)" if gone else "")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True
