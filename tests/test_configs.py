"""Dataclass config loading: unknown fields and wrong types are refused by name."""

from dataclasses import dataclass, field
from typing import Optional

import pytest

from regmix_megatron.configs import check, config_hash, config_to_dict, load_config
from regmix_megatron.errors import ConfigError


@dataclass
class Inner:
    rate: float = 0.1


@dataclass
class Outer:
    num_steps: int = 10
    name: str = "x"
    enabled: bool = True
    limit: Optional[float] = None
    inner: Inner = field(default_factory=Inner)

    def __post_init__(self):
        check(self.num_steps > 0, "outer", "num_steps", self.num_steps, "use a positive integer")


def test_loads_nested_and_coerces_numbers():
    cfg = load_config(Outer, {"num_steps": 5.0, "limit": 3, "inner": {"rate": 1}}, source="c.yaml")
    assert cfg.num_steps == 5 and isinstance(cfg.num_steps, int)
    assert cfg.limit == 3.0 and isinstance(cfg.limit, float)
    assert cfg.inner.rate == 1.0


@pytest.mark.parametrize(
    "data, pattern",
    [
        ({"num_step": 3}, r"c\.yaml: unknown field\(s\) \['num_step'\]"),
        ({"num_steps": "ten"}, r"Outer\.num_steps='ten' must be an integer"),
        ({"num_steps": 2.5}, r"must be an integer"),
        ({"enabled": "yes"}, r"Outer\.enabled='yes' must be true or false"),
        ({"inner": {"rate": "fast"}}, r"c\.yaml:inner: Inner\.rate='fast' must be a number"),
        ({"num_steps": -1}, r"outer\.num_steps=-1 is invalid: use a positive integer"),
    ],
)
def test_errors_name_field_value_and_fix(data, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config(Outer, data, source="c.yaml")


def test_hash_is_stable_and_content_sensitive():
    a = load_config(Outer, {"num_steps": 3})
    b = load_config(Outer, {"num_steps": 3})
    c = load_config(Outer, {"num_steps": 4})
    assert config_hash(a) == config_hash(b) != config_hash(c)
    assert config_to_dict(a)["inner"] == {"rate": 0.1}
