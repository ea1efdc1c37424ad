"""What every typed config shares: a strict pydantic base, YAML reading, `--set` overrides and one-line errors.

The configs themselves live beside their runners (training/config.py for the recipes, evaluation/ for eval,
forecast and certify, study/spec.py for the study); this module only holds the machinery, so a config is defined
once and every way of filling it (a YAML file, CLI flags, a study spec) validates it the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from .errors import UserError


class StrictConfig(BaseModel):
    """Unknown keys are rejected (a typo such as `bata: 0.1` never trains with the default); keys that were
    renamed or removed are rejected with a hint saying what to write instead."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
    # old key -> what to do instead (e.g. "renamed lora_alpha (PEFT's name)")
    retired_keys: ClassVar[dict[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _reject_retired_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for old, hint in cls.retired_keys.items():
                if old in data:
                    raise ValueError(f"key {old!r} was {hint}")
        return data


def error_location(err: Any) -> str:
    return ".".join(str(p) for p in err["loc"])


def error_message(err: Any) -> str:
    """pydantic's message without its "Value error, " prefix (our validators write whole sentences)."""
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def one_line(exc: ValidationError, what: str, hint: str = "check the spelling") -> str:
    """The first problem of a ValidationError as one line: `WHAT: unknown key 'a.b'; HINT` or `WHAT: a.b: msg`."""
    errors = exc.errors()
    err = errors[0]
    loc = error_location(err)
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    if err["type"] == "extra_forbidden":
        return f"{what}: unknown key {loc!r}; {hint}{more}"
    where = f"{loc}: " if loc else ""
    return f"{what}: {where}{error_message(err)}{more}"


def read_yaml_mapping(path: str | Path, what: str = "the config") -> dict[str, Any]:
    """A YAML file that must hold a mapping (an empty file is {}); every problem is a one-line UserError."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{what} not found: {p}")
    try:
        loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise UserError(f"{p}: invalid YAML: {' '.join(str(exc).split())[:200]}") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise UserError(f"{p}: {what} must be a mapping of keys to values")
    return loaded


def _parse_value(raw: str) -> Any:
    """`--set` values are YAML scalars/lists: 0.1 -> float, true -> bool, [a,b] -> list, null -> None."""
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `key=value` / `a.b=value` overrides in place (dotted keys reach nested sections)."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"--set expects key=value (e.g. --set beta=0.1), got {item!r}")
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise UserError(f"--set {key}: {part!r} is not a section")
            node = child
        node[parts[-1]] = _parse_value(raw)
    return data


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """`top` over `base`, sections merged key by key (a new dict; neither input changes)."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out
