"""Fixtures and helpers for the sweep tests (imported by tests/test_sweep*.py).

- ``slurm_cluster`` (session): a real single-node SLURM cluster from ``tools/slurm_local.sh``. Started if not
  already running; at the end only the daemons this session started are stopped. Skips with the script's
  message when slurm cannot be installed or started (e.g. not root, no apt).
- ``write_domains_json``: a small but valid domains.json for planning tests (no data files needed to plan).
- ``mechanics_train`` / ``mechanics_command``: a tiny stand-in trainer (a function, or the same as a subprocess)
  used ONLY to test executor mechanics (locks, retries, logs, interrupts); every test of sweep outcomes uses the
  real ``regmix-megatron train``.
- ``planned``: a planned 4-run sweep over a made-up domains.json (``random_mixtures``, ``write_mixtures``,
  ``write_proxy_config`` build its inputs).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SLURM_SCRIPT = REPO / "tools" / "slurm_local.sh"
DOMAINS = ("arxiv", "code", "web")


def write_domains_json(directory: Path, domains=DOMAINS) -> Path:
    """A domains manifest with made-up counts, and small real .bin/.idx pairs that match them (planning checks
    the pairs, then reads names and token counts only)."""
    from helpers.indexed_files import write_registry_files

    directory.mkdir(parents=True, exist_ok=True)
    obj = {
        "format": "regmix-megatron/domains/v1",
        "tokenizer": {"type": "sentencepiece", "model": "spm.model", "sha256": "0" * 64, "vocab_size": 512,
                      "eod_id": 2},
        "domains": [{"name": d, "splits": {s: [{"prefix": f"{d}/{s}_text_document", "num_documents": 10,
                                                "num_sequences": 10, "num_tokens": 1000 * (i + 1)}]
                                           for s in ("train", "valid")}}
                    for i, d in enumerate(domains)],
    }
    path = directory / "domains.json"
    path.write_text(json.dumps(obj, indent=2))
    write_registry_files(path)
    return path


class MechanicsFailure(RuntimeError):
    """The stand-in trainer failing on purpose."""


def mechanics_train(run_dir) -> dict:
    """A stand-in trainer for executor mechanics: reads the run's config.yaml, then behaves as told by files in
    the run directory: ``fail-times`` (fail that many starts first), ``diverge`` (write status.json diverged),
    ``sleep`` (seconds to sleep first). On success writes result.json atomically, like the real trainer."""
    import yaml

    out = Path(run_dir)
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    with open(out / "starts.log", "a") as fh:
        fh.write(f"{os.getpid()}\n")
    num_starts = len((out / "starts.log").read_text().splitlines())

    def read(name, default=None):
        return (out / name).read_text().strip() if (out / name).exists() else default

    if read("sleep"):
        time.sleep(float(read("sleep")))
    if num_starts <= int(read("fail-times", "0")):
        print("mechanics trainer: failing on purpose", flush=True)
        raise MechanicsFailure("failing on purpose")
    if read("diverge"):
        status = {"status": "diverged", "step": 3}
        (out / "status.json").write_text(json.dumps(status))
        return status
    mix = cfg["mixture"]
    result = {"status": "completed", "run_id": out.name, "mixture": mix, "seed": cfg["seed"],
              "val_loss": {d: 5.0 - 2.0 * w for d, w in mix.items()}}
    (out / ".result.tmp").write_text(json.dumps(result))
    os.replace(out / ".result.tmp", out / "result.json")
    print("mechanics trainer: done", flush=True)
    return result


def mechanics_command(run_dir: Path) -> list[str]:
    """``mechanics_train`` as a subprocess (exit 7 when failing on purpose, 3 when diverging)."""
    return [sys.executable, str(Path(__file__).resolve()), "mechanics", str(run_dir)]


def _slurm(cmd: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SLURM_SCRIPT), cmd], capture_output=True, text=True, timeout=timeout,
                          env=env)


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """SLURM_CONF of a running single-node cluster (started here if needed, stopped here if started here)."""
    env = dict(os.environ)
    state_dir = env.setdefault("REGMIX_SLURM_STATE", "/var/tmp/regmix-slurm")
    started_file = tmp_path_factory.mktemp("slurm") / "started.pids"
    env["REGMIX_SLURM_STARTED_FILE"] = str(started_file)
    proc = _slurm("start", env)
    if proc.returncode == 3:
        pytest.skip(f"SLURM cannot be installed here: {proc.stderr.strip()}")
    if proc.returncode != 0:
        if os.geteuid() != 0:
            pytest.skip(f"SLURM cannot be started without root: {proc.stderr.strip()}")
        raise RuntimeError(f"tools/slurm_local.sh start failed ({proc.returncode}):\n{proc.stderr}")
    conf = str(Path(state_dir) / "slurm.conf")
    old = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = conf
    try:
        yield conf
    finally:
        if old is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old
        if started_file.exists() and started_file.read_text().strip():
            stop = subprocess.run(["bash", str(SLURM_SCRIPT), "stop", str(started_file)], capture_output=True,
                                  text=True, timeout=120, env=env)
            if stop.returncode != 0:
                print(f"tools/slurm_local.sh stop failed: {stop.stderr}", file=sys.stderr)


# ---- real sweeps (the real `regmix-megatron train`) -------------------------------------------------------
#: The tiny-test preset, shortened: the sweep tests check orchestration, not learning (the trainer's tests do).
PROXY_OVERRIDES = {"optim": {"train_steps": 8, "warmup_steps": 2},
                   "eval": {"eval_interval": 4, "num_tokens_per_domain": 1024},
                   "checkpoint": {"interval": 4, "keep_last": 1}}


def domains_json_of(indexed) -> Path:
    """The domains.json path of the ``indexed_fixture`` (a path to the file or its directory, or an object
    carrying it)."""
    for attr in ("domains_json", "domains", "path"):
        if hasattr(indexed, attr):
            indexed = getattr(indexed, attr)
            break
    if isinstance(indexed, dict):
        indexed = indexed.get("domains_json") or indexed.get("domains")
    path = Path(indexed)
    return path / "domains.json" if path.is_dir() else path


def make_real_sweep_inputs(directory: Path, domains_json: Path, num_mixtures: int, seed: int = 0):
    """mixtures.jsonl from the real sampler + a proxy config on the tiny-test preset."""
    import yaml

    from regmix_megatron.data.manifest import DomainRegistry
    from regmix_megatron.mixtures.mixture import Mixture
    from regmix_megatron.mixtures.sampler import sample_rows
    from regmix_megatron.mixtures.sampler_config import SamplerConfig

    directory.mkdir(parents=True, exist_ok=True)
    registry = DomainRegistry.load(domains_json)
    rows = sample_rows(registry.tokens_per_domain(), SamplerConfig(num_samples=num_mixtures, seed=seed),
                       domains=registry.names)[:, 0]
    mixtures = directory / "mixtures.jsonl"
    mixtures.write_text("".join(json.dumps(Mixture.from_array(registry.names, r).to_json_obj()) + "\n"
                                for r in rows))
    config = directory / "proxy.yaml"
    config.write_text(yaml.safe_dump(dict({"preset": "tiny-test", "domains": str(domains_json), "seed": 1234},
                                          **PROXY_OVERRIDES)))
    return mixtures, config, registry.names


def check_complete_table(sweep_root: Path, num_runs: int, domains) -> "object":
    """The collected table has one row per run and a finite loss for every domain (no hole, no NaN)."""
    import numpy as np
    import pandas as pd

    from regmix_megatron.data.manifest import DomainRegistry
    from regmix_megatron.runs.sweep.plan import Sweep

    table = pd.read_parquet(sweep_root / "results.parquet")
    assert len(table) == num_runs and table["run_id"].is_unique
    evaluated = sorted(set(domains) | set(DomainRegistry.load(Sweep.load(sweep_root).domains_path).eval_only_names))
    assert [c for c in table.columns if c.startswith("val_loss/")] == [f"val_loss/{d}" for d in evaluated]
    assert not [c for c in table.columns if c.startswith("weight/") and c[len("weight/"):] not in domains]
    losses = table[[f"val_loss/{d}" for d in evaluated]].to_numpy()
    assert np.isfinite(losses).all() and (losses > 0).all()
    weights = table[[f"weight/{d}" for d in domains]].to_numpy()
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    csv = pd.read_csv(sweep_root / "results.csv")
    pd.testing.assert_frame_equal(csv, table, check_dtype=False)
    return table


# ---- planned sweeps over a made-up domains.json (mechanics tests) ---------------------------------------
def random_mixtures(domains, n, seed=0):
    import numpy as np

    from regmix_megatron.mixtures.mixture import Mixture

    rng = np.random.default_rng(seed)
    return [Mixture.from_array(domains, rng.dirichlet(np.ones(len(domains)))) for _ in range(n)]


def write_mixtures(path: Path, mixtures) -> Path:
    path.write_text("".join(json.dumps(m.to_json_obj()) + "\n" for m in mixtures))
    return path


def write_proxy_config(path: Path, domains_json: Path, **extra) -> Path:
    import yaml

    cfg = {"preset": "tiny-test", "domains": str(domains_json), "seed": 7}
    cfg.update(extra)
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def planned(tmp_path):
    """A planned sweep of 4 runs (tiny-test recipe, seed 7) in ``tmp_path/sweep``."""
    from regmix_megatron.runs.sweep.plan import plan_from_files

    domains_json = write_domains_json(tmp_path / "data")
    mixtures = write_mixtures(tmp_path / "mixtures.jsonl", random_mixtures(DOMAINS, 4))
    config = write_proxy_config(tmp_path / "proxy.yaml", domains_json)
    sweep, created = plan_from_files(mixtures, config, tmp_path / "sweep")
    assert created
    return sweep


if __name__ == "__main__" and sys.argv[1:2] == ["mechanics"]:
    try:
        outcome = mechanics_train(sys.argv[2])
    except MechanicsFailure:
        sys.exit(7)
    sys.exit(3 if outcome["status"] == "diverged" else 0)
