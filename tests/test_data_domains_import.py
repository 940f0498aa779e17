"""domains.json from existing Megatron prefixes (regmix_megatron/data/domains_import.py, `domains import`)."""

from __future__ import annotations

import json
import logging
import shutil

import pytest
import yaml

from regmix_megatron import cli
from regmix_megatron.data.domains_import import import_domains, load_import_spec, parse_prefix_args
from regmix_megatron.errors import DataError, RegmixError
from regmix_megatron.data.index_files import read_index
from regmix_megatron.data.manifest import DomainRegistry
from regmix_megatron.runs.run_config import data_identity
from regmix_megatron.data.tokenizer_types import TokenizerSpec


def test_yaml_import_records_exact_counts_and_the_tokenizer(gpt2_team_data, gpt2_tokenizer_files, tmp_path):
    registry = import_domains(load_import_spec(gpt2_team_data), tmp_path / "domains.json")
    assert len(registry.names) == len(load_import_spec(gpt2_team_data).prefixes) >= 8
    assert set(registry.get("code").splits) == {"train", "valid", "test"}
    for d in registry.domains:
        for split, (info,) in d.splits.items():
            assert info.path == str(gpt2_team_data.parent / "data" / f"{d.name}_{split}_text_document")
            counts = read_index(info.path)
            assert (info.num_tokens, info.num_documents, info.num_sequences) == (
                counts.num_tokens, counts.num_documents, counts.num_sequences)
    t = registry.tokenizer
    assert (t.type, t.vocab_size, t.eod_id) == ("gpt2-bpe", 1000, 0)
    assert t.spec.vocab_file == str(gpt2_tokenizer_files[0]) and t.spec.merge_file == str(gpt2_tokenizer_files[1])
    on_disk = json.loads((tmp_path / "domains.json").read_text())
    assert not any(v.startswith("/") for v in on_disk["tokenizer"]["megatron"].values() if isinstance(v, str)
                   and v != "GPT2BPETokenizer")  # paths relative to domains.json, so the folder can move
    assert data_identity(registry)["tokenizer"]["type"] == "gpt2-bpe"


def test_flags_give_the_same_registry_as_the_yaml(gpt2_team_data, gpt2_tokenizer_files, tmp_path, capsys):
    spec = yaml.safe_load(gpt2_team_data.read_text())
    argv = ["domains", "import", "--output", str(tmp_path / "flags.json"), "--tokenizer-type", "GPT2BPETokenizer",
            "--vocab-file", str(gpt2_tokenizer_files[0]), "--merge-file", str(gpt2_tokenizer_files[1])]
    for name, splits in spec["domains"].items():
        for split, prefix in splits.items():
            argv += ["--prefix", f"{name}:{split}={gpt2_team_data.parent / prefix}"]
    assert cli.main(argv) == 0
    assert "tokenizer: --tokenizer-type GPT2BPETokenizer" in capsys.readouterr().out
    assert cli.main(["domains", "import", "--spec", str(gpt2_team_data), "--output", str(tmp_path / "yaml.json")]) == 0
    a, b = DomainRegistry.load(tmp_path / "flags.json"), DomainRegistry.load(tmp_path / "yaml.json")
    assert a.to_json_obj() == b.to_json_obj()
    assert cli.main(["domains", "show", str(tmp_path / "yaml.json")]) == 0
    assert "code" in capsys.readouterr().out
    # several prefixes per split, with or without .bin/.idx suffixes
    two = parse_prefix_args(["web:train=a/x_text_document.bin,a/y_text_document", "web:valid=a/v"], base=tmp_path)
    assert two.prefixes["web"]["train"] == (str(tmp_path / "a/x_text_document"), str(tmp_path / "a/y_text_document"))


def _spec(team, **changes):
    obj = yaml.safe_load(team.read_text())
    for key, value in changes.items():
        obj[key] = value(obj[key])
    path = team.parent / "edited.yaml"
    path.write_text(yaml.safe_dump(obj))
    return load_import_spec(path)


def test_mistakes_are_refused_by_name(gpt2_team_data, hf_tokenizer_dir, tmp_path):
    def without(split, name="code"):
        return lambda d: {**d, name: {s: p for s, p in d[name].items() if s != split}}

    cases = [
        (_spec(gpt2_team_data, domains=without("valid")), "'code' has no valid prefixes"),
        (_spec(gpt2_team_data, domains=without("test")), "no test prefixes but"),
        (_spec(gpt2_team_data, domains=lambda d: {**d, "code": {**d["code"], "vaild": d["code"]["valid"]}}),
         "did you mean 'valid'"),
        (_spec(gpt2_team_data, domains=lambda d: {**d, "math": {**d["math"], "train": d["code"]["train"]}}),
         "listed twice"),
        (_spec(gpt2_team_data, domains=lambda d: {**d, "code": {**d["code"], "train": "data/nothing"}}),
         r"nothing\.idx: missing"),
        (_spec(gpt2_team_data, domains=lambda d: {**d, "code": {**d["code"], "train": "data"}}),
         "is a directory"),
        # data made with GPT-2 BPE (ids up to 999) declared as a HuggingFace tokenizer of 800 ids
        (_spec(gpt2_team_data, tokenizer=lambda t: {"type": "HuggingFaceTokenizer", "model": str(hf_tokenizer_dir)}),
         "outside the vocabulary"),
    ]
    for spec, needle in cases:
        with pytest.raises(RegmixError, match=needle):
            import_domains(spec, tmp_path / "out.json")
        assert not (tmp_path / "out.json").exists()
    import_domains(load_import_spec(gpt2_team_data), tmp_path / "out.json")
    with pytest.raises(RegmixError, match="exists; pass --overwrite"):
        import_domains(load_import_spec(gpt2_team_data), tmp_path / "out.json")
    with pytest.raises(RegmixError, match="is a directory"):
        import_domains(load_import_spec(gpt2_team_data), tmp_path)
    with pytest.raises(DataError, match="unknown key"):
        _spec(gpt2_team_data, tokenizer=lambda t: {**t, "vocab": 1})


def test_data_without_eod_gets_a_warning(gpt2_team_data, gpt2_tokenizer_files, tmp_path, caplog):
    from helpers.tokenizer_files import FIXTURE_CORPUS
    from regmix_megatron.data.preprocess import preprocess_jsonl

    spec = load_import_spec(gpt2_team_data)
    no_eod = tmp_path / "code_train"
    preprocess_jsonl(FIXTURE_CORPUS / "code" / "train.jsonl", no_eod, spec.tokenizer, append_eod=False)
    shutil.copytree(gpt2_team_data.parent / "data", tmp_path / "data")
    for ext in (".bin", ".idx"):
        shutil.copy(f"{no_eod}_text_document{ext}", tmp_path / "data" / f"code_train_text_document{ext}")
    obj = yaml.safe_load(gpt2_team_data.read_text())
    obj["tokenizer"] = TokenizerSpec.from_json(obj["tokenizer"], base=gpt2_team_data.parent).to_json()
    (tmp_path / "domains.yaml").write_text(yaml.safe_dump(obj))
    with caplog.at_level(logging.WARNING):
        import_domains(load_import_spec(tmp_path / "domains.yaml"), tmp_path / "domains.json")
    assert any("code.train ends with the EOD id" in r.getMessage() for r in caplog.records)
