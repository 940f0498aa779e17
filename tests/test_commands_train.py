"""``regmix-megatron train``: the resolved config it prints, and errors that name the flag or field."""

import yaml

from regmix_megatron.cli import main


def test_train_command_prints_resolved_config_and_names_bad_flags(tmp_path, capsys):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"preset": "cpu-proxy", "domains": "idx/domains.json", "output_dir": "out"}))
    assert main(["train", str(path), "--set", "optim.train_steps=70", "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["optim"]["train_steps"] == 70 and printed["model"]["seq_length"] == 128
    assert printed["domains"] == str((tmp_path / "idx" / "domains.json").resolve()) and printed["seed"] == 1234
    assert main(["train", str(path), "--set", "optim.lr", "--print-config"]) == 2
    assert "--set" in capsys.readouterr().err
    assert main(["train", str(path), "--set", "optim.lr_schedule=linear", "--print-config"]) == 2
    assert "optim.lr_schedule" in capsys.readouterr().err
    assert main(["train", str(path), "--set", "run_id=x", "--print-config"]) == 2
    assert "run_id" in capsys.readouterr().err

