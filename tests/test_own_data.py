"""README "Use your own data": its commands, run as written, on the corpus fixture.

- raw JSONL + a local HuggingFace tokenizer directory -> ``preprocess`` -> ``domains.json``;
- existing ``.bin/.idx`` prefixes (made with GPT-2 BPE, and with a HuggingFace tokenizer) -> ``domains import``
  -> ``sample`` -> a short sweep -> ``fit`` -> ``search`` (with ``--path-prefix``); the exported files parse with
  megatron-core's own blend parsing and name the cluster's paths;
- your own text -> ``corpus add --eval-only`` beside a corpus cache, and the pipeline config form
  (``corpus.extra_domains``) loaded as written.

The README's code blocks are read from README.md, so a command changed there is the command tested here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from megatron.core.datasets.utils import get_blend_from_list

from regmix_megatron.data.corpus_reader import iter_documents
from regmix_megatron.data.manifest import DomainRegistry
from regmix_megatron.pipeline.config import load_pipeline_config

from conftest import FIXTURE_CORPUS

REPO = Path(__file__).resolve().parents[1]
DOMAINS = ("code", "literature", "math")  # the domains the README's domains.yaml names


def _section_blocks() -> list[tuple[str, str]]:
    """(language, text) of every fenced block in the README's "Use your own data" section."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Use your own data\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(\w+)\n(.*?)```", section, re.S)


def _blocks(language: str) -> list[str]:
    return [body for lang, body in _section_blocks() if lang == language]


def _run_bash(script: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
               PYTHONPATH=str(REPO))
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=1800)
    assert proc.returncode == 0, f"{script}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_the_section_has_the_blocks_this_test_runs():
    assert len(_blocks("bash")) == 3 and len(_blocks("yaml")) == 3
    assert "domains import --spec domains.yaml" in _blocks("bash")[1]
    assert all(f"data/{d}_train_text_document" in _blocks("yaml")[0] for d in DOMAINS)
    assert "corpus add mytexts" in _blocks("bash")[2] and "extra_domains:" in _blocks("yaml")[2]


def _my_texts(root: Path) -> Path:
    """``my_texts/``: a text file of speeches and a JSONL file of licences whose lines name two sources."""
    texts = root / "my_texts"
    texts.mkdir()
    speeches = [doc["text"] for _, doc in iter_documents(FIXTURE_CORPUS / "speeches" / "train.jsonl")]
    (texts / "speeches.txt").write_text("\n\n".join(speeches), encoding="utf-8")
    licences = [doc["text"] for _, doc in iter_documents(FIXTURE_CORPUS / "legal" / "train.jsonl")]
    (texts / "licences.jsonl").write_text("".join(
        json.dumps({"text": t, "source": f"licences-{k % 2}"}) + "\n" for k, t in enumerate(licences)))
    return texts


def test_a_held_out_domain_of_your_own_beside_the_built_corpus(tmp_path):
    _my_texts(tmp_path)
    proc = _run_bash(_blocks("bash")[2], tmp_path)
    assert "mytexts" in proc.stdout
    corpus = tmp_path / "my_cache" / "corpus"
    entry = json.loads((corpus / "manifest.json").read_text())["domains"]["mytexts"]
    assert entry["evaluation_only"]
    lines = {s: [json.loads(line) for line in (corpus / "mytexts" / f"{s}.jsonl").read_text().splitlines()]
             for s in ("train", "valid", "test")}
    assert {line["source"] for line in lines["valid"]} == {"speeches.txt", "licences-0", "licences-1"}
    assert min(len(lines["valid"]), len(lines["test"])) > 10 * len(lines["train"])
    (tmp_path / "pipeline.yaml").write_text(_blocks("yaml")[2])
    cfg = load_pipeline_config(tmp_path / "pipeline.yaml", output_dir=str(tmp_path / "out"))
    assert cfg.target.single_domain == "mytexts" and set(cfg.corpus.eval_only) == {"qa", "mytexts"}
    assert cfg.corpus.extra_domains["mytexts"].path == str(tmp_path / "my_texts")


def test_raw_jsonl_with_a_local_huggingface_tokenizer(hf_tokenizer_dir, tmp_path):
    for domain in DOMAINS:
        shutil.copytree(FIXTURE_CORPUS / domain, tmp_path / "my_corpus" / domain)
    shutil.copytree(hf_tokenizer_dir, tmp_path / "my_tokenizer")
    _run_bash(_blocks("bash")[0], tmp_path)
    registry = DomainRegistry.load(tmp_path / "my_data" / "domains.json")
    assert list(registry.names) == list(DOMAINS) and registry.tokenizer.type == "huggingface"
    assert all(registry.get(d).num_tokens("train") > 0 for d in DOMAINS)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["gpt2", "huggingface"])
def test_existing_prefixes_through_import_sweep_fit_search_export(kind, request, tmp_path):
    """GPT-2: every file as the README writes it. HuggingFace: the same commands, the tokenizer line of
    domains.yaml naming a tokenizer directory, and 8 proxy steps instead of the preset's 30 (time)."""
    team = request.getfixturevalue("gpt2_team_data" if kind == "gpt2" else "hf_team_data").parent
    (tmp_path / "data").mkdir()
    for domain in DOMAINS:
        for f in (team / "data").glob(f"{domain}_*_text_document.*"):
            shutil.copy(f, tmp_path / "data" / f.name)
    domains_yaml, proxy_yaml = _blocks("yaml")[:2]
    if kind == "gpt2":
        vocab, merges = request.getfixturevalue("gpt2_tokenizer_files")
        (tmp_path / "tok").mkdir()
        shutil.copy(vocab, tmp_path / "tok" / "vocab.json")
        shutil.copy(merges, tmp_path / "tok" / "merges.txt")
    else:
        shutil.copytree(request.getfixturevalue("hf_tokenizer_dir"), tmp_path / "tok")
        domains_yaml = re.sub(r"^tokenizer: .*$", "tokenizer: {type: HuggingFaceTokenizer, model: tok}",
                              domains_yaml, flags=re.M)
        proxy_yaml += ("optim: {train_steps: 8, warmup_steps: 2}\neval: {eval_interval: 4}\n"
                       "checkpoint: {interval: 4, keep_last: 1}\n")
    (tmp_path / "domains.yaml").write_text(domains_yaml)
    (tmp_path / "proxy.yaml").write_text(proxy_yaml)
    proc = _run_bash(_blocks("bash")[1], tmp_path)

    registry = DomainRegistry.load(tmp_path / "data" / "domains.json")
    assert registry.tokenizer.type == ("gpt2-bpe" if kind == "gpt2" else "huggingface")
    export = tmp_path / "search" / "export"
    per_split = json.loads((export / "per_split_data_args.json").read_text())
    blends = {split: get_blend_from_list(per_split[split]) for split in ("train", "valid", "test")}
    train_prefixes, train_weights = blends["train"]
    assert train_prefixes and abs(sum(train_weights) - 1) < 1e-9
    assert all(p.startswith("/lustre/team/data/") for split in blends for p in blends[split][0])
    assert [Path(p).name for p in blends["valid"][0]] == [f"{d}_valid_text_document" for d in DOMAINS]
    mixture = json.loads((tmp_path / "search" / "mixture.json").read_text())
    weights = mixture.get("weights", mixture)
    assert {Path(p).name.split("_")[0] for p in train_prefixes} == {d for d, w in weights.items() if w > 0}
    prefixes, weights_in_file = get_blend_from_list((export / "data_path.txt").read_text().split())
    assert prefixes == train_prefixes and weights_in_file == train_weights
    flags = (export / "megatron_args.txt").read_text().split()
    assert {"--multiple-validation-sets", "--full-validation", "--per-split-data-args-path"} <= set(flags)
    assert "--tokenizer-type" in flags
    out = proc.stdout
    assert out.index("RegMix mixture") < out.index("export files") < out.index("Megatron-LM flags")
