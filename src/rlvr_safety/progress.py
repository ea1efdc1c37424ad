"""One progress hook for long loops (training steps, generation batches) that a front end may listen to.

Library code calls `report(what, done, total)`; nothing happens unless a caller installed a sink with `reporting`
(the study's display does). Kept free of any UI so every layer may import it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar

Sink = Callable[[str, int, int], None]
_sink: ContextVar[Sink | None] = ContextVar("rlvr_safety_progress_sink", default=None)


def report(what: str, done: int, total: int) -> None:
    """Tell the installed sink (if any) that `done` of `total` units of `what` are finished."""
    sink = _sink.get()
    if sink is not None:
        sink(what, int(done), int(total))


@contextlib.contextmanager
def reporting(sink: Sink | None) -> Iterator[None]:
    """Send every `report` inside the block to `sink`."""
    token = _sink.set(sink)
    try:
        yield
    finally:
        _sink.reset(token)
