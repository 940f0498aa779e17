"""One vocabulary of flags (regmix_megatron/commands/flags.py): old spellings still work and warn."""

import argparse

from regmix_megatron.cli import build_parser
from regmix_megatron.commands.flags import add_renamed


def test_an_old_spelling_sets_the_new_destination_and_warns(capsys):
    p = argparse.ArgumentParser()
    add_renamed(p, "--domains-json", "--domains", dest="domains_json")
    add_renamed(p, "--fast", "--quick", action="store_true")
    args = p.parse_args(["--domains", "d.json", "--quick"])
    assert args.domains_json == "d.json" and args.fast is True
    err = capsys.readouterr().err
    assert "--domains is deprecated" in err and "use --domains-json" in err and "--quick is deprecated" in err
    p.parse_args(["--domains-json", "d.json", "--fast"])
    assert capsys.readouterr().err == ""


def test_the_commands_use_one_name_per_concept(capsys):
    parser = build_parser()
    cases = [
        (["sample", "--domains-json", "d.json", "--output", "m.jsonl", "--num-samples", "1e3"], "num_samples", 1000),
        (["search", "--fit-dir", "f", "--domains-json", "d.json", "--output-dir", "s", "--num-candidates", "1M"],
         "num_candidates", 10**6),
        (["fit", "--results", "r.csv", "--num-folds", "4", "--metrics-json", "m.json"], "num_folds", 4),
        (["sweep", "plan", "--mixtures", "m.jsonl", "--config", "c.yaml", "--output-dir", "S"], "output_dir", "S"),
        (["sweep", "launch", "S", "--num-parallel", "2"], "num_parallel", 2),
        (["preprocess", "--input", "c", "--output-dir", "o", "--tokenizer-model", "t", "--append-eod"], "append_eod",
         True),
    ]
    for argv, dest, value in cases:
        assert getattr(parser.parse_args(argv), dest) == value, argv
    old = [(["sample", "--domains", "d.json", "--output", "m.jsonl"], "domains_json", "--domains"),
           (["fit", "--results", "r.csv", "--cv-folds", "4"], "num_folds", "--cv-folds"),
           (["fit", "--results", "r.csv", "--output-json", "m.json"], "metrics_json", "--output-json"),
           (["sweep", "plan", "--mixtures", "m", "--config", "c", "--output", "S"], "output_dir", "--output"),
           (["sweep", "launch", "S", "--parallel", "2"], "num_parallel", "--parallel")]
    for argv, dest, flag in old:
        assert getattr(parser.parse_args(argv), dest) is not None
        assert f"{flag} is deprecated" in capsys.readouterr().err
