"""'Did you mean' (regmix_megatron/suggest.py) and where the CLI uses it: subcommands, actions, flags."""

from regmix_megatron import cli
from regmix_megatron.suggest import close_matches, did_you_mean


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
