"""User-facing errors. ``assert`` is for internal invariants only; bad input raises these."""


class RegmixError(ValueError):
    """Bad user input or state. The message names the file/field/flag, the value, and the fix."""


class ConfigError(RegmixError):
    """A config field is invalid."""


class DataError(RegmixError):
    """An input file (JSONL, CSV, .idx, manifest) is malformed or inconsistent."""
