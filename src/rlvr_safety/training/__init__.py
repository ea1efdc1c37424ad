"""Training recipes on TRL: guard (safety SFT), sft, rlhf (reward model + RL), rlvr (verifiable-reward RL).

`run_recipe` is the one entry the CLI calls; configs are validated (and bad ones rejected with one line) before any
model or heavy library is loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..registry import Registry
from .config import RECIPES, CommonConfig, load_config, recipe_of

__all__ = ["RECIPES", "load_config", "run_config", "run_recipe"]


def run_recipe(recipe: str, config_path: str | Path | None, overrides: list[str] | None, out: Path,
               resume: bool = False) -> dict[str, Any]:
    """Validate the config, then train; returns a JSON-able summary (output folders, last metrics, wall time)."""
    return run_config(load_config(recipe, config_path, overrides), out, resume)


# recipe name -> run(cfg, out, resume), imported on first use (configs validate without loading TRL)
RUNNERS: Registry[Callable[..., dict[str, Any]]] = Registry("recipe")
for _recipe in RECIPES:
    RUNNERS.add(_recipe, f"rlvr_safety.training.{_recipe}:run")


def run_config(cfg: CommonConfig, out: Path, resume: bool = False) -> dict[str, Any]:
    """Train an already validated recipe config (what the study passes: no file written and read back)."""
    return RUNNERS.get(recipe_of(cfg))(cfg, Path(out), resume)  # type: ignore[no-any-return]
