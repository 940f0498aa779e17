"""Export: every Megatron-LM blend format round-trips through megatron-core's own parsing."""

import json

import numpy as np
import pytest
from megatron.core.datasets.blended_megatron_dataset_config import BlendedMegatronDatasetConfig
from megatron.core.datasets.utils import get_blend_from_list

from regmix_megatron import cli
from regmix_megatron.errors import DataError, RegmixError
from regmix_megatron.export.files import (
    PathMap,
    blend_for_split,
    export,
    format_data_path,
    load_mixture_arg,
    per_split_data_args,
)
from regmix_megatron.data.manifest import Domain, DomainRegistry, PrefixInfo, TokenizerInfo
from regmix_megatron.mixtures.mixture import Mixture

from helpers.indexed_files import write_registry_files

TOKENS = {"books": [4000], "code": [1000, 3000], "web": [9000], "wiki": [500]}


def make_registry(root, tokens=TOKENS) -> DomainRegistry:
    domains = []
    for name, sizes in tokens.items():
        splits = {}
        for split in ("train", "valid", "test"):
            counts = sizes if split == "train" else [100]
            splits[split] = tuple(PrefixInfo(str(root / name / f"{split}_{k}_text_document"), 3, 3, n)
                                  for k, n in enumerate(counts))
        domains.append(Domain(name=name, splits=splits))
    tok = TokenizerInfo("sentencepiece", str(root / "tok.model"), "0" * 64, 512, 2)
    reg = DomainRegistry(domains=tuple(domains), tokenizer=tok, path=str(root / "domains.json"))
    reg.save(root / "domains.json")
    write_registry_files(root / "domains.json")
    return DomainRegistry.load(root / "domains.json")


def megatron_read_per_split(path):
    """What Megatron-LM does with --per-split-data-args-path: json.load, split string entries on whitespace,
    each of train/valid/test (all required) through get_blend_from_list."""
    with open(path) as f:
        obj = json.load(f)
    for split in ("train", "valid", "test"):
        if isinstance(obj[split], str):
            obj[split] = obj[split].split()
    return [get_blend_from_list(obj["train"]), get_blend_from_list(obj["valid"]), get_blend_from_list(obj["test"])]


def domain_weights(registry, prefixes, weights):
    out = {}
    for p, w in zip(prefixes, weights):
        name = next(d.name for d in registry.domains for q in d.prefixes("train") if q.path == p)
        out[name] = out.get(name, 0.0) + w
    return out


@pytest.fixture()
def registry(tmp_path):
    return make_registry(tmp_path)


MIXTURES = [
    {"books": 0.1, "code": 0.3, "web": 0.6, "wiki": 0.0},
    {"books": 0.0, "code": 0.0, "web": 1.0, "wiki": 0.0},
    {"books": 0.123456789012345, "code": 0.2, "web": 0.0, "wiki": 0.676543210987655},
]


@pytest.mark.parametrize("weights", MIXTURES)
def test_every_format_round_trips_through_megatron(registry, tmp_path, weights):
    mixture = Mixture.from_dict(weights)
    prefixes, ws = blend_for_split(registry, mixture)
    files = export(registry, mixture, tmp_path / "out")

    # --data-path "w1 p1 ...": Megatron-LM's argparse gives a list of whitespace-separated tokens.
    parsed_cli = get_blend_from_list(files["data_path"].read_text().split())
    # --data-args-path FILE: Megatron-LM reads the file and splits it on whitespace.
    parsed_file = get_blend_from_list(files["data_args"].read_text().split())
    # --per-split-data-args-path FILE.json
    train, valid, test = megatron_read_per_split(files["per_split_data_args"])
    for parsed in (parsed_cli, parsed_file, train):
        assert parsed[0] == prefixes
        assert parsed[1] == ws  # exact: weights written with repr
        back = domain_weights(registry, *parsed)
        assert set(back) == set(mixture.nonzero())  # zero-weight domains dropped, none vanished
        for name, w in mixture.nonzero().items():
            assert back[name] == pytest.approx(w, rel=1e-15, abs=0)
        assert all(w > 0 for w in parsed[1])
        assert Mixture.from_dict(back).restrict(registry.names).as_array() == pytest.approx(mixture.as_array(),
                                                                                            abs=1e-15)

    # valid/test: every domain's prefixes unweighted (zero-weight ones too), for --multiple-validation-sets
    for split, blend in (("valid", valid), ("test", test)):
        assert blend[1] is None
        assert blend[0] == [p.path for d in registry.domains for p in d.prefixes(split)]
    # megatron-core accepts the three blends as a per-split config
    config = BlendedMegatronDatasetConfig(random_seed=1, sequence_length=8, blend_per_split=[train, valid, test],
                                          multiple_validation_sets=True)
    assert config.blend_per_split[0] == train
    assert Mixture.load(files["mixture"]) == mixture


def test_multi_prefix_domain_split_by_token_count(registry):
    mixture = Mixture.from_dict({"books": 0.2, "code": 0.4, "web": 0.4, "wiki": 0.0})
    prefixes, weights = blend_for_split(registry, mixture)
    code = {p: w for p, w in zip(prefixes, weights) if "/code/" in p}
    assert len(code) == 2
    w0, w1 = (code[p] for p in sorted(code))
    assert w0 == pytest.approx(0.4 * 1000 / 4000, abs=1e-16) and w1 == pytest.approx(0.4 * 3000 / 4000, abs=1e-16)
    assert not any("/wiki/" in p for p in prefixes)


def test_refuses_unknown_or_missing_domains(registry, tmp_path):
    with pytest.raises(DataError, match=r"unknown \['news'\]"):
        export(registry, Mixture.from_dict({"books": 0.5, "code": 0.1, "web": 0.2, "wiki": 0.1,
                                                    "news": 0.1}), tmp_path / "x")
    with pytest.raises(DataError, match=r"missing \['wiki'\]"):
        format_data_path(registry, Mixture.from_dict({"books": 0.5, "code": 0.25, "web": 0.25}))
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())


def test_refuses_prefixes_megatron_would_misread(tmp_path):
    reg = make_registry(tmp_path, {"a b": [10], "c": [10]})
    with pytest.raises(DataError, match="whitespace"):
        format_data_path(reg, Mixture.from_dict({"a b": 0.5, "c": 0.5}))


def test_domain_without_valid_data_is_not_dropped_silently(tmp_path):
    reg = make_registry(tmp_path)
    domains = list(reg.domains)
    domains[0] = Domain(name=domains[0].name, splits={"train": domains[0].prefixes("train")})
    reg = DomainRegistry(domains=tuple(domains), tokenizer=reg.tokenizer)
    with pytest.raises(DataError, match=r"\['books'\] have no valid prefixes"):
        per_split_data_args(reg, Mixture.from_dict({"books": 0.25, "code": 0.25, "web": 0.25, "wiki": 0.25}))


def test_cli_export_from_sample_jsonl_line(registry, tmp_path, capsys):
    out = tmp_path / "mix.jsonl"
    assert cli.main(["sample", "--domains-json", str(tmp_path / "domains.json"), "--num-samples", "6", "--seed", "1",
                     "--output", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 6 and (tmp_path / "mix.jsonl.sampler.yaml").is_file()
    third = json.loads(lines[3])
    assert cli.main(["export", "--mixture", f"{out}:3", "--domains-json", str(tmp_path / "domains.json"),
                     "--output-dir", str(tmp_path / "e")]) == 0
    m = Mixture.load(tmp_path / "e" / "mixture.json")
    assert m.hash == third["hash"] and m.as_dict() == third["weights"]
    assert cli.main(["export", "--mixture", str(out), "--index", "3", "--domains-json", str(tmp_path / "domains.json"),
                     "--output-dir", str(tmp_path / "e2")]) == 0
    assert (tmp_path / "e2" / "data_args.txt").read_text() == (tmp_path / "e" / "data_args.txt").read_text()
    assert load_mixture_arg(f"{out}:5") == Mixture.from_dict(json.loads(lines[5])["weights"])
    with pytest.raises(DataError, match="has no mixture 6"):
        load_mixture_arg(f"{out}:6")
    # CLI errors name the flag
    assert cli.main(["export", "--mixture", str(out), "--domains-json", str(tmp_path / "domains.json"),
                     "--output-dir", str(tmp_path / "e3")]) == 2
    assert "--mixture" in capsys.readouterr().err


def test_edited_sample_line_is_refused(registry, tmp_path):
    out = tmp_path / "mix.jsonl"
    row = {"index": 0, "hash": "0123456789abcdef", "weights": {"books": 0.25, "code": 0.25, "web": 0.25, "wiki": 0.25}}
    out.write_text(json.dumps(row) + "\n")
    with pytest.raises(DataError, match="hash 0123456789abcdef does not match"):
        load_mixture_arg(f"{out}:0")
    out.write_text('{"weights": {"books": 0.5, "books": 0.25, "code": 0.25}}\n')
    with pytest.raises(DataError, match="more than once"):
        load_mixture_arg(f"{out}:0")


def test_weights_are_exact_floats_on_disk(registry, tmp_path):
    rng = np.random.default_rng(3)
    w = rng.dirichlet(np.ones(4))
    mixture = Mixture.from_array(registry.names, w)
    files = export(registry, mixture, tmp_path / "o")
    tokens = files["data_args"].read_text().split()
    _, weights = blend_for_split(registry, mixture)
    assert [float(t) for t in tokens[0::2]] == weights


def test_megatron_args_name_the_no_test_file_with_per_domain_validation_and_the_tokenizer(registry, tmp_path):
    files = export(registry, Mixture.from_dict(MIXTURES[0]), tmp_path / "out")
    args = files["megatron_args"].read_text().split()
    assert args[:2] == ["--per-split-data-args-path", str(files["per_split_data_args_no_test"].resolve())]
    assert {"--multiple-validation-sets", "--full-validation"} <= set(args)  # Megatron-LM needs both together
    assert args[args.index("--tokenizer-type") + 1] == "GPTSentencePieceTokenizer"
    assert args[args.index("--tokenizer-model") + 1] == registry.tokenizer.model
    with_test = json.loads(files["per_split_data_args"].read_text())
    no_test = json.loads(files["per_split_data_args_no_test"].read_text())
    assert with_test["test"] == [p.path for d in registry.domains for p in d.prefixes("test")]
    assert no_test == {**with_test, "test": None}  # Megatron-LM 0.16.1 fails on a test split after training
    assert megatron_read_per_split(files["per_split_data_args_no_test"])[2] is None


def test_path_prefix_rewrites_every_written_path(registry, tmp_path):
    mixture = Mixture.from_dict(MIXTURES[0])
    path_map = PathMap.parse([f"{tmp_path}=/lustre/team/data"])
    files = export(registry, mixture, tmp_path / "out", path_map=path_map)
    plain = export(registry, mixture, tmp_path / "plain")
    cluster = lambda p: p.replace(str(tmp_path), "/lustre/team/data")  # noqa: E731
    assert files["data_path"].read_text() == cluster(plain["data_path"].read_text())
    assert files["data_args"].read_text() == cluster(plain["data_args"].read_text())
    for key in ("per_split_data_args", "per_split_data_args_no_test"):
        assert files[key].read_text() == cluster(plain[key].read_text())
    train, valid, test = megatron_read_per_split(files["per_split_data_args"])
    assert all(p.startswith("/lustre/team/data/") for p in train[0] + valid[0] + test[0])
    args = files["megatron_args"].read_text()
    assert str(tmp_path) not in args and "/lustre/team/data/out/per_split_data_args_no_test.json" in args
    assert "--tokenizer-model /lustre/team/data/tok.model" in args
    with pytest.raises(DataError, match=r"does not rewrite .*books"):  # a rule that misses the data
        export(registry, mixture, tmp_path / "x", path_map=PathMap.parse(["/elsewhere=/lustre"]))


def test_path_map_matches_whole_path_components_longest_first():
    m = PathMap.parse(["/data=/A", "/data/big=/B"])
    assert m("/data/x") == "/A/x" and m("/data/big/y") == "/B/y" and m("/database/z") == "/database/z"
    assert m("/data") == "/A" and PathMap.parse(["/data/=/A/"])("/data/x") == "/A/x"
    for bad in (["/data"], ["=/x"], ["/a=/x", "/a=/y"]):
        with pytest.raises(RegmixError, match="--path-prefix"):
            PathMap.parse(bad)


def test_path_prefixes_of_a_config_are_one_typed_value_naming_the_field():
    from regmix_megatron.errors import ConfigError
    from helpers.field_docs import undocumented_fields

    m = PathMap.from_dict({"/data": "/A", "/data/big/": "/B/"}, source="p.yaml: export.path_prefix")
    assert m == PathMap.parse(["/data=/A", "/data/big=/B"]) == PathMap.parse({"/data": "/A", "/data/big": "/B"})
    assert m.rules == (("/data/big", "/B"), ("/data", "/A")) and m("/data/big/y") == "/B/y"
    with pytest.raises(ConfigError, match=r"p\.yaml: export\.path_prefix\./data='' is invalid: map a path prefix"):
        PathMap.from_dict({"/data": ""}, source="p.yaml: export.path_prefix")
    with pytest.raises(ConfigError, match=r"export\.path_prefix: the prefix\(es\) \['/data'\] are given twice"):
        PathMap.from_dict({"/data": "/A", "/data/": "/B"})
    with pytest.raises(ConfigError, match=r"export\.path_prefix=\['/data=/A'\] is invalid: give a mapping"):
        PathMap.from_dict(["/data=/A"])
    assert undocumented_fields(PathMap) == []


def test_no_test_prefixes_mean_a_null_test_split(tmp_path):
    reg = make_registry(tmp_path)
    reg = DomainRegistry(domains=tuple(Domain(d.name, {s: p for s, p in d.splits.items() if s != "test"})
                                       for d in reg.domains), tokenizer=reg.tokenizer)
    assert per_split_data_args(reg, Mixture.from_dict(MIXTURES[0]))["test"] is None


def test_cli_export_prints_the_flags_and_rewrites_paths(registry, tmp_path, capsys):
    (tmp_path / "m.json").write_text(json.dumps(MIXTURES[0]))
    assert cli.main(["export", "--mixture", str(tmp_path / "m.json"), "--domains-json", str(tmp_path / "domains.json"),
                     "--output-dir", str(tmp_path / "e"), "--path-prefix", f"{tmp_path}=/cluster"]) == 0
    out = capsys.readouterr().out
    flags = (tmp_path / "e" / "megatron_args.txt").read_text().strip()
    assert flags in out and "/cluster/e/per_split_data_args_no_test.json" in flags
    assert out.index("web 0.6000") < out.index(flags)  # the mixture first, then the files and the flags


def test_evaluation_only_domain_is_a_validation_set_never_a_training_blend(registry, tmp_path):
    held = registry.with_evaluation_only(["wiki"])
    mixture = Mixture.from_dict({"books": 0.1, "code": 0.3, "web": 0.6})
    files = export(held, mixture, tmp_path / "out")
    train, valid, test = megatron_read_per_split(files["per_split_data_args"])
    assert not any("/wiki/" in p for p in train[0])
    assert not any("/wiki/" in p for p in files["data_args"].read_text().split()[1::2])
    for blend, split in ((valid, "valid"), (test, "test")):  # wiki's held-out sets are exported, unweighted
        assert [p for p in blend[0] if "/wiki/" in p] == [p.path for p in held.get("wiki").prefixes(split)]
    with pytest.raises(DataError, match=r"evaluation-only domain\(s\) \{'wiki': 0.1\}"):
        export(held, Mixture.from_dict({"books": 0.1, "code": 0.2, "web": 0.6, "wiki": 0.1}), tmp_path / "leak")
    assert not (tmp_path / "leak").exists()


# ---- schedules ---------------------------------------------------------------------------------------------------
def test_schedule_export_per_phase_files_round_trip_through_megatron(registry, tmp_path, capsys):
    from regmix_megatron.mixtures.schedule import Schedule, load_schedule

    main, final = Mixture.from_dict(MIXTURES[0]), Mixture.from_dict(MIXTURES[2])
    schedule = Schedule.from_phases([(0.8, main), (0.2, final)])
    files = export(registry, schedule, tmp_path / "e", train_iters=1000, global_batch_size=512)
    assert load_schedule(files["schedule"]).hash == schedule.hash  # what --regmix-schedule reads
    for k, phase in enumerate(schedule.phases, start=1):
        (train, valid, test) = megatron_read_per_split(files[f"phase{k}"])
        assert domain_weights(registry, *train) == pytest.approx(phase.mixture.nonzero(), rel=1e-15)
        assert valid[1] is None and len(valid[0]) == len(test[0]) == 4  # every domain, unweighted
    doc = json.loads(files["phases"].read_text())
    assert doc["schedule_hash"] == schedule.hash and doc["train_iters"] == 1000
    assert [(r["start_step"], r["end_step"]) for r in doc["phases"]] == [(0, 800), (800, 1000)]
    assert doc["phase_transition_iterations"] == "800"
    assert "--regmix-schedule schedule.json" in doc["exact"]["flags"]
    assert "served the same documents again" in doc["restart_warning"]
    # books (10% then 12.3%) and code (30% then 20%) are drawn in both phases; web and wiki in one each
    repeats = doc["restart_repeats"]
    assert set(repeats) == {"books", "code"}
    drawn = [0.1 * 800 * 512, 0.123456789012345 * 200 * 512]
    assert repeats["books"]["drawn"] == pytest.approx(sum(drawn))
    assert repeats["books"]["repeated"] == pytest.approx(min(drawn))

    assert cli.main(["export", "--schedule", str(files["schedule"]), "--domains", str(tmp_path / "domains.json"),
                     "--output-dir", str(tmp_path / "cli"), "--train-iters", "1000"]) == 0
    out = capsys.readouterr().out
    assert "phase 2: fraction 0.2, steps 800..999: phase2/per_split_data_args.json" in out
    assert "--phase-transition-iterations 800" in out and "warning: A job per phase is NOT" in out
    with pytest.raises(SystemExit):  # argparse: one of --mixture / --schedule
        cli.main(["export", "--schedule", str(files["schedule"]), "--mixture", "x.json", "--domains",
                  str(tmp_path / "domains.json"), "--output-dir", str(tmp_path / "both")])
    assert "--mixture: not allowed with argument --schedule" in capsys.readouterr().err


def test_one_export_a_one_phase_schedule_writes_exactly_the_mixtures_files(registry, tmp_path, capsys):
    """A static mixture is the one-phase schedule: its export is the mixture's files, byte for byte (no
    schedule.json, phases.json or phase folders), from the API and from ``export --schedule``; an export folder is
    rewritten whole from one form to the other."""
    from regmix_megatron.mixtures.schedule import Schedule

    mixture = Mixture.from_dict(MIXTURES[0])
    files = export(registry, mixture, tmp_path / "mixture")
    one = export(registry, Schedule.from_mixture(mixture), tmp_path / "one")
    assert {k: p.name for k, p in one.items()} == {k: p.name for k, p in files.items()}

    def tree(root):
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
                and p.name not in ("outputs.json", "megatron_args.txt")}  # megatron_args names its own folder

    assert tree(tmp_path / "one") == tree(tmp_path / "mixture")
    assert (tmp_path / "one" / "megatron_args.txt").read_text().replace("/one/", "/mixture/") == \
        (tmp_path / "mixture" / "megatron_args.txt").read_text()
    schedule_file = Schedule.from_mixture(mixture).save(tmp_path / "one.json")
    assert cli.main(["export", "--schedule", str(schedule_file), "--domains", str(tmp_path / "domains.json"),
                     "--output-dir", str(tmp_path / "cli")]) == 0
    assert f"mixture {mixture.hash}:" in capsys.readouterr().out and tree(tmp_path / "cli") == tree(tmp_path / "one")
    two = Schedule.from_phases([(0.5, mixture), (0.5, Mixture.from_dict(MIXTURES[2]))])
    export(registry, two, tmp_path / "one")  # the mixture's files go, the schedule's come
    assert sorted(tree(tmp_path / "one")) == ["phase1/data_args.txt", "phase1/data_path.txt", "phase1/mixture.json",
                                              "phase1/per_split_data_args.json",
                                              "phase1/per_split_data_args_no_test.json", "phase2/data_args.txt",
                                              "phase2/data_path.txt", "phase2/mixture.json",
                                              "phase2/per_split_data_args.json",
                                              "phase2/per_split_data_args_no_test.json", "phases.json",
                                              "schedule.json"]
