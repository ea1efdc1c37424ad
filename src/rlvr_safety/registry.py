"""One small registry for everything chosen by name: judges, rewards, generation backends, training recipes.

Entries are lazy: a "package.module:attribute" string is imported on first use, so listing names or validating a
config imports nothing heavy (asking for the keyword judge never imports torch), and a registry never imports the
modules it names at load time (no import cycles between a registry and its entries). Names are case-insensitive;
an unknown name is a one-line UserError listing the known ones.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from .errors import UserError

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """name -> factory (or object), each given as the object itself or as a lazy "module:attribute" string."""

    def __init__(self, kind: str, hint: str = "") -> None:
        self.kind = kind
        self.hint = hint
        self._entries: dict[str, str | T] = {}
        self._defaults: dict[str, dict[str, Any]] = {}

    def add(self, name: str, target: str | T, /, **defaults: Any) -> None:
        """Register `target` under `name`; `defaults` are keyword options `build` passes unless overridden."""
        key = name.strip().lower()
        if key in self._entries:
            raise ValueError(f"{self.kind} {key!r} is registered twice")
        self._entries[key] = target
        self._defaults[key] = dict(defaults)

    def register(self, name: str, /, **defaults: Any) -> Callable[[T], T]:
        """Decorator form of `add`."""
        def wrap(obj: T) -> T:
            self.add(name, obj, **defaults)
            return obj
        return wrap

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.strip().lower() in self._entries

    def check(self, name: str) -> str:
        """The normalised name, or a UserError listing the known ones."""
        key = name.strip().lower()
        if key not in self._entries:
            hint = f" {self.hint}" if self.hint else ""
            raise UserError(f"unknown {self.kind} {name!r}; choose one of {', '.join(self.names())}{hint}")
        return key

    def get(self, name: str) -> T:
        """The registered object, importing a lazy entry on first use."""
        key = self.check(name)
        target = self._entries[key]
        if isinstance(target, str):
            module, _, attr = target.partition(":")
            try:
                loaded = getattr(importlib.import_module(module), attr)
            except ModuleNotFoundError as exc:
                if exc.name and module.startswith(exc.name):
                    raise UserError(f"{self.kind} {key!r} is not available: module {module} is missing") from exc
                raise UserError(f"{self.kind} {key!r} needs a package that is not installed: {exc.name}") from exc
            self._entries[key] = loaded
            return loaded  # type: ignore[no-any-return]
        return target

    def build(self, name: str, /, **options: Any) -> Any:
        """Call the registered factory with its defaults updated by `options`; bad options are a UserError."""
        key = self.check(name)
        factory: Any = self.get(key)
        try:
            return factory(**{**self._defaults[key], **options})
        except TypeError as exc:
            raise UserError(f"bad options for {self.kind} {key!r}: {exc}") from exc
