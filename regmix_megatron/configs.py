"""Dataclass configs loaded from YAML/dicts, with errors that name the field, the value and the fix.

Usage::

    @dataclass
    class FooConfig:
        num_things: int = 3
        \"\"\"How many things.\"\"\"

        def __post_init__(self):
            check(self.num_things > 0, "FooConfig", "num_things", self.num_things, "use a positive integer")

    cfg = load_config(FooConfig, {"num_things": 5}, source="foo.yaml")

A renamed field keeps its old key working with a deprecation warning: a class attribute
``RENAMED_FIELDS = {"old_key": "new_key"}`` (or ``{"old_key": ("new_key", convert)}`` when the meaning shifted,
e.g. retries -> attempts). Unknown keys get a "did you mean". A field whose type has its own parser (a value type
such as ``Target``, or a config class that needs defaults from elsewhere) is named in ``PARSED_FIELDS = ("name",)``:
its value is handed to the class as written, and the class parses it once (in ``__post_init__``). Numbers may be written ``1e6`` or ``1M`` (YAML reads
those as strings; :mod:`regmix_megatron.numbers` parses them).

:class:`Field`: typed reading of a parsed JSON/YAML document (a versioned file) against its schema: every value is
checked for the type the schema gives it, and an error names the file and the field's path
(``domains[2].splits.train[0].num_tokens``), what was expected, what was found, and the fix::

    doc = Field(read_json(path), where=str(path), fix="regenerate it with `regmix-megatron preprocess`")
    for d in doc["domains"].items():
        name = d["name"].text()
"""

from __future__ import annotations

import dataclasses
import logging
import typing
from pathlib import Path
from typing import Any, Callable, Mapping, Type, TypeVar

from .errors import ConfigError, DataError

T = TypeVar("T")
logger = logging.getLogger(__name__)


def check(ok: bool, section: str, field: str, value: Any, fix: str) -> None:
    """Raise ConfigError naming ``section.field``, the offending value and how to fix it."""
    if not ok:
        raise ConfigError(f"{section}.{field}={value!r} is invalid: {fix}")


def load_config(cls: Type[T], data: Mapping[str, Any] | None, source: str = "<config>") -> T:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys and wrong basic types by name.

    Nested dataclass fields are built recursively from nested mappings.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping for {cls.__name__}, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    data = _renamed(cls, data, source)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        from .errors import did_you_mean

        raise ConfigError(
            f"{source}: unknown field(s) {unknown} for {cls.__name__}{did_you_mean(unknown[0], fields)}; "
            f"known fields: {sorted(fields)}"
        )
    hints = typing.get_type_hints(cls)
    parsed_by_cls = getattr(cls, "PARSED_FIELDS", ())
    kwargs = {}
    for name, value in data.items():
        hint = hints.get(name)
        if name in parsed_by_cls:
            pass  # the class parses it (its __post_init__)
        elif dataclasses.is_dataclass(hint) and isinstance(value, Mapping):
            value = load_config(hint, value, source=f"{source}:{name}")
        else:
            value = _coerce(hint, value, f"{source}: {cls.__name__}.{name}")
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:  # missing required fields
        raise ConfigError(f"{source}: {cls.__name__}: {exc}") from None
    except ConfigError as exc:  # a check in __post_init__: name the file it came from
        raise with_source(exc, source) from None


def with_source(exc: ConfigError, source: str) -> ConfigError:
    """``exc`` with its message prefixed by ``source`` (the file), unless it names it already."""
    message = str(exc)
    if not source or source.startswith("<") or message.startswith(source.split(":")[0]):
        return exc
    return type(exc)(f"{source}: {message}")


def _renamed(cls: type, data: Mapping[str, Any], source: str) -> dict:
    """``data`` with the old keys of ``cls.RENAMED_FIELDS`` moved to their new names (warning once each)."""
    renamed = getattr(cls, "RENAMED_FIELDS", {})
    out = dict(data)
    for old, target in renamed.items():
        if old not in out:
            continue
        new, convert = target if isinstance(target, tuple) else (target, None)
        if new in out:
            raise ConfigError(f"{source}: {cls.__name__} has both {old!r} and {new!r}: keep {new!r} ({old!r} is "
                              "its old name)")
        value = out.pop(old)
        out[new] = convert(value) if convert is not None and value is not None else value
        logger.warning("%s: %r is deprecated, use %r%s", source, old, new,
                       f" (= {out[new]!r})" if convert is not None else "")
    return out


def _coerce(hint: Any, value: Any, where: str) -> Any:
    """Light type checks for scalars: int/float/bool/str, Optional, tuples/lists of scalars."""
    if hint is None or value is None:
        return value
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union:
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) == 1:
            return _coerce(non_none[0], value, where)
        return value
    if hint in (int, float) and isinstance(value, str):
        from .numbers import parse_count, parse_number

        try:
            return parse_count(value) if hint is int else parse_number(value)
        except ValueError as exc:
            raise ConfigError(f"{where}={value!r} must be {'an integer' if hint is int else 'a number'} "
                              f"(e.g. 1000000, 1e6 or 1M): {exc}") from None
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{where}={value!r} must be an integer")
        return value
    if hint is float:
        raise ConfigError(f"{where}={value!r} must be a number")
    if hint is bool and not isinstance(value, bool):
        raise ConfigError(f"{where}={value!r} must be true or false")
    if hint is str and not isinstance(value, str):
        if isinstance(value, Path):
            return str(value)
        raise ConfigError(f"{where}={value!r} must be a string")
    if origin in (tuple, list) and isinstance(value, (list, tuple)):
        item = args[0] if args else None
        items = [_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    return value


def config_to_dict(cfg: Any) -> dict:
    """A plain-dict (YAML/JSON-safe) view of a dataclass config."""
    def conv(v):
        if dataclasses.is_dataclass(v):
            return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        if isinstance(v, Mapping):
            return {str(k): conv(x) for k, x in v.items()}
        if isinstance(v, Path):
            return str(v)
        return v

    return conv(cfg)


def config_hash(cfg: Any, length: int = 12) -> str:
    """Stable content hash of a config: :func:`regmix_megatron.hashing.content_hash` of its dict view."""
    from .hashing import content_hash

    return content_hash(config_to_dict(cfg), length=length)


# ---- typed reading of versioned files ----------------------------------------------------------------------
_MISSING = object()


def plain_record(record: Any) -> dict:
    """The file form of a frozen dataclass record, :class:`Field`'s counterpart for writing: its fields in
    declaration order (the file's key order), nested records as their ``to_json_obj()``, tuples as lists."""
    def conv(v: Any) -> Any:
        if hasattr(v, "to_json_obj"):
            return v.to_json_obj()
        if isinstance(v, tuple):
            return [conv(x) for x in v]
        if isinstance(v, Mapping):
            return {k: conv(x) for k, x in v.items()}
        return v

    return {f.name: conv(getattr(record, f.name)) for f in dataclasses.fields(record)}


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

    def number(self) -> int | float:
        """An integer or a float (a bool is not one)."""
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float)):
            raise self._error("a number")
        return self.value

    def maybe(self, read: Callable[["Field"], T]) -> T | None:
        """``read(self)``, or None when the value is null or the field is absent: ``doc["sd"].maybe(Field.number)``."""
        return None if self.value is None or self.value is _MISSING else read(self)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


__all__ = ["Field"]
