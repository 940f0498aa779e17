"""``regmix-megatron run``'s printed outcome (regmix_megatron/commands/run.py): the confirmation round above the
verdicts, saying when a measured candidate replaced the search's pick."""

from __future__ import annotations

from helpers.evaluation import CLEAR_WIN, runs
from regmix_megatron.commands.run import print_verdicts
from regmix_megatron.full_scale.confirmation import CandidateRuns, Confirmation, decide
from regmix_megatron.full_scale.evaluation import ConfirmationSummary, evaluate, write_evaluation
from regmix_megatron.regression.target import Target


def _evaluation(losses):
    decision = decide(losses, None, Target.domain("a"))
    record = Confirmation(Target.domain("a"), "valid", (1, 2), tuple(
        CandidateRuns(label, {"a": 1.0}, f"h{i}", {1: "r", 2: "s"}) for i, label in enumerate(losses)), decision)
    return evaluate("a", runs(CLEAR_WIN), confirmation=ConfirmationSummary.from_confirmation(record))


def test_the_printed_outcome_says_when_the_round_replaced_the_pick(tmp_path, capsys):
    write_evaluation(tmp_path / "evaluation.json", _evaluation(
        {"regmix": {1: 5.00, 2: 5.04}, "best_domain:code": {1: 4.60, 2: 4.62}}))
    print_verdicts(tmp_path)
    out = capsys.readouterr().out
    assert "confirmation round (proxy scale, valid split, 2 candidates): best_domain:code replaced the search's " \
           "pick and trained as regmix" in out
    assert out.index("confirmation round") < out.index("verdicts")
    write_evaluation(tmp_path / "evaluation.json", _evaluation(
        {"regmix": {1: 5.00, 2: 5.04}, "best_domain:code": {1: 5.01, 2: 5.05}}))
    print_verdicts(tmp_path)
    out = capsys.readouterr().out
    assert "the pick stands" in out and "replaced" not in out
    write_evaluation(tmp_path / "evaluation.json", evaluate("a", runs(CLEAR_WIN)))  # the round did not run
    print_verdicts(tmp_path)
    assert "confirmation round" not in capsys.readouterr().out
