"""Training recipes on TRL: guard (safety SFT), sft, rlhf (reward model + RL), rlvr (verifiable-reward RL).

`run_recipe` is the one entry the CLI calls; configs are validated (and bad ones rejected with one line) before any
model or heavy library is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .config import RECIPES, CommonConfig, load_config, recipe_of

__all__ = ["RECIPES", "load_config", "run_config", "run_recipe"]


def run_recipe(recipe: str, config_path: str | Path | None, overrides: list[str] | None, out: Path,
               resume: bool = False) -> dict[str, Any]:
    """Validate the config, then train; returns a JSON-able summary (output folders, last metrics, wall time)."""
    return run_config(load_config(recipe, config_path, overrides), out, resume)


def run_config(cfg: CommonConfig, out: Path, resume: bool = False) -> dict[str, Any]:
    """Train an already validated recipe config (what the study passes: no file written and read back)."""
    recipe = recipe_of(cfg)
    out = Path(out)
    if recipe == "rlvr":
        from .rlvr import run as run_rlvr

        return run_rlvr(cfg, out, resume)  # type: ignore[arg-type]
    if recipe == "rlhf":
        from .rlhf import run as run_rlhf

        return run_rlhf(cfg, out, resume)  # type: ignore[arg-type]
    if recipe == "sft":
        from .sft import run as run_sft

        return run_sft(cfg, out, resume)  # type: ignore[arg-type]
    from .guard import run as run_guard

    return run_guard(cfg, out, resume)  # type: ignore[arg-type]
