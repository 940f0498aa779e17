"""The one error boundary (errors.run_guarded, used by every entry point): a user's mistake or a fault the user
can fix ends in one ``error:`` line naming the file or flag and exit status 2; a bug keeps its traceback."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest

from regmix_megatron import cli
from regmix_megatron.errors import ConfigError, close_matches, did_you_mean, os_error_message, run_guarded

from helpers.regression import results_table

CLI = [sys.executable, "-m", "regmix_megatron.cli"]


def test_user_errors_exit_2_with_one_line_and_bugs_keep_their_traceback(capsys):
    def config_error():
        raise ConfigError("x.yaml: seed=-1 is invalid: use an integer >= 0")

    def full_disk():
        raise OSError(errno.ENOSPC, "No space left on device", "/data/out/result.json")

    def bug():
        return {}["missing"]

    assert run_guarded("prog", config_error) == 2
    assert capsys.readouterr().err == "prog: error: x.yaml: seed=-1 is invalid: use an integer >= 0\n"
    assert run_guarded("prog", full_disk) == 2
    err = capsys.readouterr().err
    assert err.startswith("prog: error: /data/out/result.json: no space left on the device: free space")
    assert err.count("\n") == 1
    with pytest.raises(KeyError):  # a bug: not turned into a message
        run_guarded("prog", bug)
    with pytest.raises(OSError):  # an OS error that is not the user's to fix (here: a bad file descriptor)
        run_guarded("prog", lambda: os.close(10_000))


@pytest.mark.parametrize("code, words", [
    (errno.ENOSPC, "no space left"), (errno.EDQUOT, "quota"), (errno.EACCES, "permission denied"),
    (errno.EROFS, "read-only file system"), (errno.ENOENT, "no such file"), (errno.EISDIR, "is a directory"),
])
def test_os_errors_the_user_can_fix_name_the_file_and_the_fix(code, words):
    message = os_error_message(OSError(code, os.strerror(code), "/some/file"))
    assert message.startswith("/some/file: ") and words in message and ": " in message[len("/some/file: "):]
    assert os_error_message(ValueError("x")) is None


def _cli(*args, **kwargs):
    return subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=300, **kwargs)


def _one_error_line(proc) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ": error: " in ln]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_bad_files_end_in_one_message_naming_them(tmp_path):
    (tmp_path / "dir").mkdir()
    (tmp_path / "binary").write_bytes(bytes(range(256)) * 8)
    d, b = str(tmp_path / "dir"), str(tmp_path / "binary")
    cases = [
        (["sample", "--domains", b, "--output", str(tmp_path / "m.jsonl")], b),
        (["export", "--mixture", d, "--domains", b, "--output-dir", str(tmp_path / "x")], b),
        (["export", "--mixture", b + ".jsonl:0", "--domains", d, "--output-dir", str(tmp_path / "x")], "domains.json"),
        (["fit", "--results", b, "--target", "x"], b),
        (["fit", "--results", d, "--target", "x"], d),
        (["train", b], b),
        (["train", d], d),
        (["run", b], b),
        (["sweep", "plan", "--mixtures", b, "--config", b, "--output", str(tmp_path / "s")], b),
        (["sweep", "status", d], d),
        (["search", "--model", b, "--prior", b, "--output-dir", str(tmp_path / "s")], b),
        (["report", "--fit-dir", d, "--output", str(tmp_path / "r.html")], d),
    ]
    for args, named in cases:
        assert named in _one_error_line(_cli(*args)), args


def test_an_unwritable_output_is_a_message(tmp_path):
    """Permission denied: the command runs as root without the capability to override file permissions
    (``setpriv``), so a read-only directory refuses it as it refuses any user (skipped where that is impossible)."""
    if os.geteuid() != 0 or not os.path.exists("/usr/bin/setpriv"):
        pytest.skip("needs root and setpriv to drop the permission-override capability")
    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0o555)
    table, _ = results_table(tmp_path / "results")
    proc = subprocess.run(["/usr/bin/setpriv", "--bounding-set=-dac_override,-dac_read_search", "--", *CLI,
                           "fit", "--results", str(table), "--target", "web", "--regressors", "linear",
                           "--output-dir", str(locked / "fit")], capture_output=True, text=True, timeout=300)
    line = _one_error_line(proc)
    assert "permission denied" in line.lower() and str(locked) in line, line


def test_messages_name_what_exists(tmp_path, capsys):
    """The literal {root}, the --normalize flag that did not exist, and a config error without its file."""
    assert cli.main(["sweep", "status", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "{root}" not in err and f"--output-dir {tmp_path.resolve()}" in err
    (tmp_path / "m.json").write_text('{"a": 0.4, "b": 0.4}')
    assert cli.main(["export", "--mixture", str(tmp_path / "m.json"), "--domains", str(tmp_path),
                     "--output-dir", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    if "domains.json: file not found" not in err:  # the mixture is read after the registry
        assert "--renormalize" in err and "--normalize " not in err
    (tmp_path / "p.yaml").write_text("sample: {num_proxies: 2}\ncorpus: {source: build}\n")
    assert cli.main(["run", str(tmp_path / "p.yaml")]) == 2
    assert str(tmp_path / "p.yaml") in capsys.readouterr().err


def test_every_renormalize_hint_names_a_flag_of_its_command():
    """Each command whose errors can say "pass --renormalize" has that flag."""
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in ("export", "train", "fit", "search", "report"):
        options = {o for a in sub.choices[name]._actions for o in a.option_strings}
        assert "--renormalize" in options, name
    sweep = sub.choices["sweep"]
    plan = next(a for a in sweep._actions if a.dest == "sweep_command").choices["plan"]
    assert "--renormalize" in {o for a in plan._actions for o in a.option_strings}


# ---- "did you mean" (close_matches, did_you_mean) and where the CLI uses it: subcommands, actions, flags ----
def test_close_matches_ignore_case_and_dashes():
    assert close_matches("num-candidate", ["num_candidates", "top_k"]) == ["num_candidates"]
    assert did_you_mean("smaple", ["sample", "search", "sweep"]) == "; did you mean 'sample'?"
    assert did_you_mean("zzz", ["sample"]) == ""


def test_the_cli_suggests_subcommands_actions_and_flags(capsys):
    for argv, hint in ((["smaple"], "did you mean 'sample'"), (["sweep", "lanch"], "did you mean 'launch'"),
                       (["domains", "imprt"], "did you mean 'import'"),
                       (["report", "--output", "x.html", "--fit-dri", "f"], "did you mean '--fit-dir'")):
        try:
            cli.main(argv)
        except SystemExit as exc:
            assert exc.code == 2
        assert hint in capsys.readouterr().err, argv
