"""The fixture paths and the config writer that the pipeline tests share."""
from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
FIXTURE_CORPUS = REPO / "tests" / "fixtures" / "corpus"
FIXTURE_CONFIG = REPO / "examples" / "fixture.yaml"
SCHEDULE_CONFIG = REPO / "examples" / "fixture_schedule.yaml"


def write_config(tmp_path: Path, data: dict) -> Path:
    """``data`` as ``tmp_path/cfg.yaml``, for ``load_pipeline_config`` or ``regmix-megatron run``."""
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(data))
    return path
