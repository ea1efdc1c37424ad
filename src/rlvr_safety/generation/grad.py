"""No-gradient blocks that are safe while a model is being trained.

Evaluation code runs its forwards under `torch.inference_mode()` (fastest). A monitor that generates with the
*training* policy between optimizer steps must not: tensors created in inference mode (a cache or buffer the model
keeps, a tensor a callback hands back to the trainer) can never enter autograd later ("Inference tensors cannot be
saved for backward"). `training_time()` marks such a block; inside it `no_grad()` is `torch.no_grad()`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

_TRAINING_TIME: ContextVar[bool] = ContextVar("rlvr_safety_training_time", default=False)


@contextlib.contextmanager
def training_time() -> Iterator[None]:
    """Within the block, generation and log-prob helpers use torch.no_grad() instead of torch.inference_mode()."""
    token = _TRAINING_TIME.set(True)
    try:
        yield
    finally:
        _TRAINING_TIME.reset(token)


def in_training_time() -> bool:
    return _TRAINING_TIME.get()


def no_grad() -> Any:
    """torch.no_grad() inside training_time(), torch.inference_mode() otherwise."""
    import torch

    return torch.no_grad() if _TRAINING_TIME.get() else torch.inference_mode()
