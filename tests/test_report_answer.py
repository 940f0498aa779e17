"""The report's answer box (regmix_megatron/report/answer.py): how far to trust the mixture, from a constructed
evaluation."""

from __future__ import annotations

from helpers.evaluation import DOCUMENTS_DISAGREE, SOURCES, document_losses, document_profiles, runs
from regmix_megatron.full_scale.evaluation import evaluate
from regmix_megatron.report.answer import _evaluation_confidence


def test_the_confidence_lines_give_each_verdicts_noise_parts_and_which_source_each_mixture_wins():
    spec = DOCUMENTS_DISAGREE
    evaluation = evaluate("a", runs(spec), documents=document_losses(spec, document_profiles()),
                          document_sources={"a": SOURCES})
    lines = _evaluation_confidence(evaluation)
    natural = next(line for line in lines if "vs natural" in line)
    assert "within noise" in natural and "documents dominate" in natural and "from seeds 0.0008" in natural
    assert lines[-1] == "a by source (lowest test loss; a description, not a verdict): chat: natural, faq: regmix"
    assert not any(line.startswith("aim met") for line in lines)
    assert _evaluation_confidence(evaluate("a", runs(spec)))[-1].startswith("aim met")  # seeds only: a "win"
    assert _evaluation_confidence(None) == []
