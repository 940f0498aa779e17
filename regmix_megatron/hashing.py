"""One content hash for everything that gets an id or a fingerprint from what defines it.

``canonical_json`` is the one canonical serialization (sorted keys, no spaces; values that JSON cannot hold, such
as paths, as their ``str``); ``content_hash`` is its SHA-256, cut to ``length`` hex digits when asked.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

#: Hex digits of the ids derived from content (mixture hashes, run ids, config hashes).
ID_LENGTH = 16


def canonical_json(obj: Any) -> str:
    """The canonical JSON text of ``obj`` (sorted keys, compact separators, ``str`` for other values)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def content_hash(obj: Any, length: int | None = ID_LENGTH) -> str:
    """SHA-256 of :func:`canonical_json` (a ``str`` is hashed as it is), as hex; ``length=None`` keeps all 64."""
    text = obj if isinstance(obj, str) else canonical_json(obj)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return digest if length is None else digest[:length]
