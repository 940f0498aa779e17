"""The whole RegMix pipeline as resumable stages (``regmix-megatron run CONFIG``).

Owns the pipeline config, the stage framework (records, fingerprints, skip/redo/resume), the eleven stages, the
evaluation of the outcome and the pipeline's progress bar. Pure orchestration: each stage calls the module that
owns its work, so it may import the core, ``corpus``, ``sweep`` and ``report``; Megatron is reached only through
those modules (training runs are subprocesses), and nothing but ``commands`` imports this package.
See docs/PIPELINE.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from .config import PipelineConfig, load_pipeline_config
from .framework import Progress, StageResult, format_summary, run_stages

__all__ = ["PipelineConfig", "load_pipeline_config", "run_pipeline", "format_summary", "Progress",
           "StageResult", "CONFIG_FILE"]

#: ``OUT/config.yaml``: the pipeline's resolved config (not a run directory's, which ``runs/run_dir.py`` owns).
CONFIG_FILE = "config.yaml"


def run_pipeline(cfg: PipelineConfig, *, until: str | None = None, force: Iterable[str] = (),
                 progress: Progress | None = None) -> list[StageResult]:
    """Run (or resume) the pipeline into ``cfg.output_dir``; returns one result per stage.

    The resolved config is saved as ``OUT/config.yaml``.
    """
    from ..fileio import atomic_write_yaml
    from .stages import build_stages

    out = Path(cfg.output_dir)
    refuse_old_stage_names(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_yaml(out / CONFIG_FILE, cfg.to_dict())
    return run_stages(build_stages(), cfg, out, until=until, force=force, progress=progress)


#: Stages renamed since an output folder may have been written: old name -> new name.
RENAMED_STAGES = {"targets": "full_scale"}


def refuse_old_stage_names(out: Path) -> None:
    """Refuse an output folder whose records use a stage's old name (``OUT/stages/targets.json``, the full-scale
    runs under ``OUT/targets/``): its records and ``runs.json`` name those paths, so this version would neither
    find nor reuse them and would train the full-scale runs again beside them."""
    from ..errors import RegmixError

    for old, new in RENAMED_STAGES.items():
        if (out / "stages" / f"{old}.json").is_file():
            raise RegmixError(
                f"{out} was written by an older regmix-megatron, whose stage {old!r} is now {new!r}: its records "
                f"({out / 'stages' / (old + '.json')}) and its runs under {out / old} are not read by this version. "
                f"Its finished outputs stay readable as they are (report.html, evaluation.json, {old}/runs.json); to "
                f"continue the pipeline, give a new output_dir (or --output-dir), or delete {out / 'stages' / old}.json "
                f"and {out / old}/ to train the {new} stage again here")
