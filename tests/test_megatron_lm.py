"""Against a real Megatron-LM checkout: its own preprocessing, its own data path, its own argument checks.

Megatron-LM's ``megatron.training`` and ``tools/preprocess_data.py`` are not in the megatron-core wheel and cannot
be downloaded here, so this runs only where ``REGMIX_MEGATRON_LM`` names a checkout (with ``six``, ``pydantic`` and
``einops`` importable: the ``megatron-lm`` extra); elsewhere every test skips with that message:

    REGMIX_MEGATRON_LM=~/Megatron-LM .venv/bin/python -m pytest tests/test_megatron_lm.py

- our ``tools/preprocess_data.py`` and Megatron-LM's write byte-identical ``.bin/.idx`` for every supported
  tokenizer type (SentencePiece, GPT-2 BPE, HuggingFace, tiktoken), also with ``--partitions``;
- our dataset provider and ``pretrain_gpt.py``'s own provider reading our ``per_split_data_args.json`` build the
  same train, validation and test sets, sample for sample (SentencePiece data, and GPT-2 data imported with
  ``domains import``);
- the flags ``export`` prints pass Megatron-LM's ``parse_args`` + ``validate_args``;
- (the dataset helpers of a fresh checkout: tests/test_megatron_checkout.py).
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

from regmix_megatron.data.domains_import import import_domains, load_import_spec
from regmix_megatron.export.files import export
from regmix_megatron.data.manifest import DomainRegistry
from regmix_megatron.mixtures.mixture import Mixture

from conftest import FIXTURE_CORPUS
from helpers import megatron_lm_preprocess
from helpers.megatron_lm_args import validate, validated_args

REPO = Path(__file__).resolve().parents[1]
CHECKOUT = os.environ.get("REGMIX_MEGATRON_LM")

pytestmark = pytest.mark.skipif(
    not CHECKOUT, reason="set REGMIX_MEGATRON_LM to a Megatron-LM checkout to run Megatron-LM's own code")


def _check(*args: str) -> str:
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "check_megatron_lm.py"), "--megatron-lm", CHECKOUT,
                           *args], capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0 and proc.stdout.rstrip().endswith("OK"), proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


COMPARED = re.compile(r"^((train|valid|test)(: | samples per component: ).*|samples sha256: .*)$", re.M)


def _both_providers(domains_json: Path, mixture: Mixture, tmp_path: Path) -> tuple[list[str], list[str]]:
    path = mixture.save(tmp_path / "mixture.json")
    exported = export(DomainRegistry.load(domains_json), mixture, tmp_path / "export")
    ours = _check("--regmix-domains", str(domains_json), "--regmix-mixture", str(path))
    theirs = _check("--regmix-domains", str(domains_json), "--per-split-data-args-path",
                    str(exported["per_split_data_args"]))
    return COMPARED.findall(ours), COMPARED.findall(theirs)


@pytest.mark.slow
def test_both_providers_build_the_same_train_valid_and_test_sets(indexed_fixture, tmp_path):
    registry = DomainRegistry.load(indexed_fixture.domains_json)
    weights = {name: 0.0 for name in registry.names}
    weights.update({registry.names[0]: 0.6, registry.names[1]: 0.3, registry.names[-1]: 0.1})
    ours, theirs = _both_providers(indexed_fixture.domains_json, Mixture.from_dict(weights), tmp_path)
    assert ours == theirs
    lines = [m[0] for m in ours]
    assert f"valid: {len(registry.all_names)} set(s)" in " ".join(lines)  # one validation set per evaluated domain
    assert any(line.startswith("test: BlendedDataset") for line in lines)  # a test set, blended by size
    assert sum(line.startswith("test samples per component:") for line in lines) == 1
    assert any(line.startswith("samples sha256: train=") and "test=None" not in line for line in lines)


@pytest.mark.slow
def test_both_providers_agree_on_imported_gpt2_data(gpt2_team_data, tmp_path):
    domains_json = tmp_path / "domains.json"
    registry = import_domains(load_import_spec(gpt2_team_data), domains_json)
    weights = dict.fromkeys(registry.names, 0.0)
    weights.update({"code": 0.5, "literature": 0.3, "math": 0.2})
    ours, theirs = _both_providers(domains_json, Mixture.from_dict(weights), tmp_path)
    assert ours == theirs and any(m[0].startswith("test: BlendedDataset") for m in ours)


# ---- preprocessing, byte for byte ----------------------------------------------------------------------------
def _jsonl(tmp_path: Path) -> Path:
    """Real documents of three domains, plus what Megatron-LM treats specially: an empty text (a document of no
    sequences) and a list of sentences (one sequence each)."""
    lines = []
    for domain in ("code", "literature", "math"):
        lines += (FIXTURE_CORPUS / domain / "valid.jsonl").read_text(encoding="utf-8").splitlines()
    lines.insert(2, json.dumps({"text": ""}))
    lines.insert(5, json.dumps({"text": ["First sentence.", "", " Second one, héllo 🙂"]}))
    path = tmp_path / "docs.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _tokenizer_flags(kind, request) -> tuple[list[str], list[str]]:
    """(our flags, Megatron-LM's flags) for one tokenizer type."""
    if kind == "sentencepiece":
        model = str(request.getfixturevalue("indexed_fixture").tokenizer_model)
        flags = ["--tokenizer-type", "GPTSentencePieceTokenizer", "--tokenizer-model", model]
        return flags, flags
    if kind == "gpt2":
        vocab, merges = request.getfixturevalue("gpt2_tokenizer_files")
        flags = ["--tokenizer-type", "GPT2BPETokenizer", "--vocab-file", str(vocab), "--merge-file", str(merges)]
        return flags, flags + ["--legacy-tokenizer"]  # Megatron-LM's default system fetches "gpt2" from the hub
    if kind == "huggingface":
        flags = ["--tokenizer-type", "HuggingFaceTokenizer",
                 "--tokenizer-model", str(request.getfixturevalue("hf_tokenizer_dir"))]
        return flags, flags
    path, vocab_size = request.getfixturevalue("tiktoken_vocab")
    flags = ["--tokenizer-type", "TikTokenizer", "--tokenizer-model", str(path), "--vocab-size", str(vocab_size)]
    return flags, flags


@pytest.mark.slow
@pytest.mark.parametrize("kind,extra", [("sentencepiece", []), ("gpt2", []), ("huggingface", []), ("tiktoken", []),
                                        ("gpt2", ["--partitions", "2"])])
def test_preprocessing_is_byte_identical_to_megatron_lms(kind, extra, request, tmp_path):
    source = _jsonl(tmp_path)
    ours_flags, their_flags = _tokenizer_flags(kind, request)
    common = ["--append-eod", "--workers", "2", *extra]
    theirs_input = source
    if extra:  # Megatron-LM writes partition files beside its input: give it its own copy
        (tmp_path / "mlm").mkdir()
        theirs_input = Path(shutil.copy(source, tmp_path / "mlm" / "docs.jsonl"))
    proc = megatron_lm_preprocess.run(CHECKOUT, ["--input", str(theirs_input), "--output-prefix",
                                                 str(tmp_path / "theirs"), *their_flags, *common])
    assert proc.returncode == 0, proc.stderr[-3000:]
    ours = subprocess.run([sys.executable, str(REPO / "tools" / "preprocess_data.py"), "--input", str(source),
                           "--output-prefix", str(tmp_path / "ours"), *ours_flags, *common],
                          capture_output=True, text=True, timeout=900)
    assert ours.returncode == 0, ours.stderr[-3000:]
    for ext in (".bin", ".idx"):
        theirs_bytes = (tmp_path / f"theirs_text_document{ext}").read_bytes()
        assert (tmp_path / f"ours_text_document{ext}").read_bytes() == theirs_bytes, ext
    assert "1 document(s) without tokens" in ours.stdout  # the empty text is kept, as Megatron-LM keeps it


# ---- flags and helpers ---------------------------------------------------------------------------------------
def test_the_exported_flags_pass_megatron_lms_argument_checks(indexed_fixture, gpt2_team_data, tmp_path):
    model = ["--num-layers", "2", "--hidden-size", "64", "--num-attention-heads", "2", "--seq-length", "64",
             "--max-position-embeddings", "64", "--micro-batch-size", "2", "--global-batch-size", "4",
             "--train-iters", "10", "--lr", "1e-3"]
    registries = [DomainRegistry.load(indexed_fixture.domains_json),
                  import_domains(load_import_spec(gpt2_team_data), tmp_path / "gpt2.json")]
    for i, registry in enumerate(registries):
        mixture = Mixture.from_array(registry.names, registry.prior())
        files = export(registry, mixture, tmp_path / f"export{i}")
        flags = files["megatron_args"].read_text().split()
        args = validated_args(validate(CHECKOUT, model + flags, dict(os.environ), world_size=1, arch=9))
        assert args["multiple_validation_sets"] and args["full_validation"]


def test_a_schedule_through_megatron_lms_data_path(indexed_fixture, tmp_path):
    """``--regmix-schedule``: Megatron-LM's ``build_train_valid_test_datasets`` and ``build_pretraining_data_loader``
    take the scheduled train set; a loader resumed at the phase boundary's consumed samples reads the boundary's
    samples."""
    from regmix_megatron.mixtures.schedule import Schedule

    registry = DomainRegistry.load(indexed_fixture.domains_json)
    main = Mixture.from_array(registry.names, registry.prior("train"))
    final = Mixture.from_dict({n: (0.7 if n == registry.names[0] else 0.3 / (len(registry.names) - 1))
                               for n in registry.names})
    path = Schedule.from_phases([(0.5, main), (0.5, final)]).save(tmp_path / "schedule.json")
    out = _check("--regmix-domains", str(indexed_fixture.domains_json), "--regmix-schedule", str(path))
    assert "train: ScheduledDataset, 80 samples" in out  # 20 iterations x global batch 4
    assert "train phase 1: from step 0" in out and "train phase 2: from step 10" in out
    assert "train resumed at step 10 (consumed samples 40): first batch is samples 40..41" in out
    assert f"valid: {len(registry.all_names)} set(s)" in out
