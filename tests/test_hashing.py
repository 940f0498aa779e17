"""The one content hash (regmix_megatron/hashing.py), and the ids built on it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from regmix_megatron.configs import config_hash
from regmix_megatron.hashing import ID_LENGTH, canonical_json, content_hash


def test_canonical_json_ignores_key_order_and_spells_paths():
    assert canonical_json({"b": 1, "a": [1.5, None]}) == '{"a":[1.5,null],"b":1}'
    assert canonical_json({"p": Path("/x/y")}) == '{"p":"/x/y"}'
    assert content_hash({"b": 1, "a": 2}) == content_hash({"a": 2, "b": 1})


def test_content_hash_is_sha256_of_the_canonical_text():
    obj = {"seed": 3, "name": "run"}
    full = hashlib.sha256(canonical_json(obj).encode()).hexdigest()
    assert content_hash(obj, length=None) == full and content_hash(obj) == full[:ID_LENGTH]
    assert content_hash("already canonical") == hashlib.sha256(b"already canonical").hexdigest()[:ID_LENGTH]


def test_config_hash_is_the_content_hash_of_the_configs_dict():
    @dataclass
    class Cfg:
        steps: int = 10
        out: Path = Path("/tmp/o")

    assert config_hash(Cfg()) == content_hash({"steps": 10, "out": "/tmp/o"}, length=12)
