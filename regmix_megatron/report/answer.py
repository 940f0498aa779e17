"""The top of every report: the answer (the mixture, the export files, the Megatron-LM flags to paste) and, next to
it, how far to trust it (the fit's held-out Spearman; with a pipeline's ``evaluation.json``, the target-scale
comparison, rank invariance, and whatever verdict or noise estimate the evaluation holds).

HTML only (no figure), so it renders before any image and fits the first screen.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from .page import Section

if TYPE_CHECKING:
    from ..full_scale.evaluation import Evaluation
    from ..regression.fitting import FitMetrics
    from ..search.outputs import SearchSummary


def _fmt(x: Any, digits: int = 4) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}" if isinstance(x, float) else html.escape(str(x))


def _sd(sd: float | None) -> str:
    """`` +- sd`` of a prediction of ``search.json``, empty when the regressor gives no uncertainty."""
    return "" if sd is None else f" &plusmn; {_fmt(sd)}"


def _mixture_table(weights: Mapping[str, float]) -> str:
    rows = sorted(weights.items(), key=lambda kv: -kv[1])
    cells = "".join(
        f"<tr><td>{html.escape(d)}</td><td>{w:.4f}</td><td class='barcell'><span class='bar' "
        f"style='width:{100 * w:.1f}%'></span></td></tr>" for d, w in rows)
    return ("<table class='mixture'><thead><tr><th>domain</th><th>weight</th><th>share of training tokens</th>"
            f"</tr></thead><tbody>{cells}</tbody></table>")


def _export_block(search: "SearchSummary", search_dir: Path) -> str:
    exported = search.export_files
    if not exported:
        return ("<p>No export files: the search had no <code>domains.json</code> "
                "(run <code>regmix-megatron export --mixture ... --domains-json ...</code>).</p>")
    directory = Path(next(iter(exported.values()))).parent
    args_file = exported.get("megatron_args")
    flags = Path(args_file).read_text(encoding="utf-8").strip() if args_file and Path(args_file).is_file() else ""
    names = ", ".join(f"<code>{html.escape(Path(p).name)}</code>" for p in exported.values())
    out = f"<p>Export files in <code>{html.escape(str(directory))}/</code>: {names}.</p>"
    if flags:
        out += ("<p>Megatron-LM flags to paste (<code>pretrain_gpt.py</code>; also in "
                f"<code>megatron_args.txt</code>):</p><pre class='flags'><code>{html.escape(flags)}</code></pre>")
    return out


def _fit_confidence(metrics: "FitMetrics | None", regressor: str | None, target: str | None) -> str:
    if metrics is None:
        return "fit: n/a (no fit directory)"
    entry = (metrics.regressors.get(regressor or "lightgbm") or {}).get(target)
    if entry is None:
        return "fit: n/a"
    cv = entry.cv
    return (f"fit ({regressor}): Spearman {_fmt(entry.spearman, 3)} on {entry.evaluated_on}"
            + (f", {cv.num_folds} folds" if cv is not None and cv.num_folds else ""))


def _evaluation_confidence(evaluation: "Evaluation | None") -> list[str]:
    """The verdicts of ``evaluation.json`` (each baseline against the noise of its difference, seeds and documents,
    with the parts; rank invariance; the aim), as :func:`regmix_megatron.full_scale.verdict.verdict_lines` words
    them (a win within noise is never claimed), then which source of the target each mixture wins."""
    if evaluation is None:
        return []
    from ..full_scale.verdict import verdict_lines

    return verdict_lines(evaluation) + _source_lines(evaluation)


def _source_lines(evaluation: "Evaluation") -> list[str]:
    """Per target domain with sources, which compared mixture has the lowest test loss on each source (the
    report's by-source table in one line; a description, not a verdict)."""
    from ..full_scale.evaluation import lowest_loss_by_source

    lowest = lowest_loss_by_source(list(evaluation.mixtures.values()))
    return [f"{domain} by source (lowest test loss; a description, not a verdict): "
            + ", ".join(f"{s}: {lowest[(d, s)]}" for d, s in sorted(lowest) if d == domain)
            for domain in sorted({d for d, _ in lowest})]


def answer_section(search_dir: str | Path, *, metrics: "FitMetrics | None" = None,
                   evaluation: "Evaluation | None" = None, target_label: str | None = None) -> Section:
    """The report's first section (see the module docstring)."""
    from ..search.outputs import read_search

    search_dir = Path(search_dir)
    search = read_search(search_dir)
    target = target_label or search.target
    head = (f"<p class='answer-lead'>Train on this mixture (optimized for <b>{html.escape(str(target))}</b>; "
            f"predicted {_fmt(search.result.predicted_loss)}{_sd(search.result.predicted_sd)}, the mean of the best "
            f"{search.top_k} of "
            f"{search.num_candidates:,} simulated candidates):</p>")
    confidence = [_fit_confidence(metrics, search.regressor, search.target)]
    confidence += _evaluation_confidence(evaluation)
    box = ("<div class='confidence'><b>How far to trust it</b><ul>"
           + "".join(f"<li>{html.escape(line)}</li>" for line in confidence) + "</ul></div>")
    body = (f"<div id='answer' class='answer'>{head}<div class='answer-grid'><div>{_mixture_table(search.result.weights)}"
            f"</div>{box}</div>{_export_block(search, search_dir)}</div>")
    return Section("The answer: mixture, export, Megatron-LM flags", body)
