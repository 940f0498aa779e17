"""Typed reading of a parsed JSON/YAML document against its schema: every value is checked for the type the
schema gives it, and an error names the file and the field's path (``domains[2].splits.train[0].num_tokens``),
what was expected, what was found, and the fix.

Usage (``domains.json``)::

    doc = Field(read_json(path), where=str(path), fix="regenerate it with `regmix-megatron preprocess`")
    for d in doc["domains"].items():
        name = d["name"].text()
        for split, prefixes in d["splits"].mapping().items():
            for p in prefixes.items():
                p["num_tokens"].count()

Pure core: the standard library.
"""

from __future__ import annotations

from typing import Any

from .errors import DataError

_MISSING = object()


class Field:
    """One value of a document and where it is (file and field path)."""

    def __init__(self, value: Any, where: str, fix: str = "", path: str = ""):
        self.value, self.where, self.fix, self.path = value, where, fix, path

    def _error(self, expected: str) -> DataError:
        found = "nothing (the field is missing)" if self.value is _MISSING else "null" if self.value is None else \
            f"{type(self.value).__name__} {_short(self.value)}"
        field = f"field {self.path!r}" if self.path else "the document"
        return DataError(f"{self.where}: {field} must be {expected}, not {found}" + (f"; {self.fix}" if self.fix
                                                                                          else ""))

    def __getitem__(self, key: str) -> "Field":
        value = self.mapping().get(key, _MISSING)
        return Field(value, self.where, self.fix, f"{self.path}.{key}" if self.path else key)

    def get(self, key: str, default: Any = None) -> "Field":
        """The field ``key``, or ``default`` when it is absent (or null)."""
        value = self.mapping().get(key)
        return Field(default if value is None else value, self.where, self.fix,
                     f"{self.path}.{key}" if self.path else key)

    def mapping(self) -> dict:
        if not isinstance(self.value, dict):
            raise self._error("a mapping")
        return self.value

    def items(self) -> list["Field"]:
        """The elements of a list, each a :class:`Field`."""
        if not isinstance(self.value, list):
            raise self._error("a list")
        return [Field(v, self.where, self.fix, f"{self.path}[{i}]") for i, v in enumerate(self.value)]

    def fields(self) -> dict[str, "Field"]:
        """The entries of a mapping with string keys, each a :class:`Field`."""
        out = {}
        for key, value in self.mapping().items():
            if not isinstance(key, str):
                raise self._error("a mapping with string keys")
            out[key] = Field(value, self.where, self.fix, f"{self.path}.{key}" if self.path else key)
        return out

    def choice(self, allowed) -> str:
        """A string among ``allowed``."""
        if self.value not in tuple(allowed):
            raise self._error(f"one of {list(allowed)}")
        return self.value

    def text(self, non_empty: bool = True) -> str:
        if not isinstance(self.value, str) or (non_empty and not self.value):
            raise self._error("a non-empty string" if non_empty else "a string")
        return self.value

    def count(self) -> int:
        """An integer >= 0 (a bool is not one)."""
        if isinstance(self.value, bool) or not isinstance(self.value, int) or self.value < 0:
            raise self._error("an integer >= 0")
        return self.value

    def flag(self) -> bool:
        if not isinstance(self.value, bool):
            raise self._error("true or false")
        return self.value


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


__all__ = ["Field"]
