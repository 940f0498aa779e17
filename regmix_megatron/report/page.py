"""The HTML page: one self-contained file (PNG figures embedded as base64), readable without running Python.

Building blocks, so any stage can add its own sections::

    sections = [text_section("Setup", "<p>...</p>"), figure_section("Losses", fig), table_section("Runs", df)]
    build_report(sections, "report.html", title="RegMix")
"""

from __future__ import annotations

import base64
import html
import io
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Section:
    """A titled block of HTML. ``images`` are (file name, PNG bytes) already embedded in ``html``; they are
    also written as files when :func:`build_report` gets a ``png_dir``."""

    title: str
    html: str
    images: tuple[tuple[str, bytes], ...] = field(default=(), repr=False)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "figure"


def figure_png(fig: Any, dpi: int = 110) -> bytes:
    """PNG bytes of a matplotlib figure (closed afterwards)."""
    from .figures import pyplot

    plt = pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def figure_section(title: str, fig: Any, caption: str = "", name: str | None = None, dpi: int = 110) -> Section:
    """A section holding one figure (embedded as a base64 PNG) and an optional caption (plain text)."""
    png = figure_png(fig, dpi=dpi)
    data = base64.b64encode(png).decode("ascii")
    body = f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,{data}">'
    if caption:
        body += f"<figcaption>{html.escape(caption)}</figcaption>"
    body += "</figure>"
    return Section(title, body, (((name or _slug(title)) + ".png", png),))


def table_html(frame: Any, float_format: str = "{:.4g}", scroll: bool = True) -> str:
    """An HTML table from a pandas DataFrame (or a list of dict rows), inside a container that scrolls when the
    table is wider or longer than the page (``scroll``)."""
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        frame = pd.DataFrame(list(frame))
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for _, row in frame.iterrows():
        cells = []
        for v in row.tolist():
            if isinstance(v, (float, np.floating)):
                text = "" if not np.isfinite(v) else float_format.format(v)
            else:
                text = "" if v is None else str(v)
            cells.append(f"<td>{html.escape(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    return f"<div class='scroll'>{table}</div>" if scroll else table


def table_section(title: str, frame: Any, caption: str = "", float_format: str = "{:.4g}") -> Section:
    body = table_html(frame, float_format)
    if caption:
        body = f"<p>{html.escape(caption)}</p>" + body
    return Section(title, body)


def text_section(title: str, text: str, *, raw_html: bool = False) -> Section:
    """Plain text (escaped, paragraphs split on blank lines) or ``raw_html``."""
    if raw_html:
        return Section(title, text)
    paras = [p.strip() for p in text.split("\n\n") if p.strip()]
    return Section(title, "".join(f"<p>{html.escape(p)}</p>" for p in paras))


_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{border-bottom:2px solid #333;padding-bottom:.2em}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}th,td{border:1px solid #ccc;padding:.25em .6em;
text-align:right}th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}
figure{margin:1em 0}img{max-width:100%;height:auto}figcaption{color:#555;font-size:.9em}
nav ul{columns:2}.meta{color:#666;font-size:.9em}
.scroll{max-width:100%;max-height:34em;overflow:auto;margin:1em 0}.scroll table{margin:0}
.scroll thead th{position:sticky;top:0}
.answer{border:2px solid #333;border-radius:6px;padding:.2em 1em 1em;background:#fcfcf7}
.answer-grid{display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start}.answer-grid>div{flex:1 1 22em}
table.mixture td.barcell{width:12em}.bar{display:inline-block;height:.8em;background:#d62728}
.confidence{background:#f2f5fa;border:1px solid #c9d3e3;padding:.4em .9em;font-size:.92em}
.confidence ul{margin:.3em 0;padding-left:1.2em}
pre.flags{white-space:pre-wrap;word-break:break-all;background:#f6f8fa;border:1px solid #ddd;padding:.6em;
font-size:.85em}
"""


def build_report(sections: Sequence[Section], path: str | Path, title: str = "RegMix report",
                  subtitle: str = "", png_dir: str | Path | None = None, lead: Sequence[Section] = ()) -> Path:
    """Write one self-contained HTML file atomically (and the PNGs into ``png_dir`` when given: the folder whole
    and in place, with its ``outputs.json``, before the page, so a failed write leaves the previous figures or
    none, and no page without them: :func:`regmix_megatron.output_folder.output_folder`).
    ``lead`` sections come first, before the table of contents (the answer belongs on the first screen)."""
    from ..fileio import atomic_write_bytes, atomic_write_text
    from ..output_folder import output_folder

    sections = list(lead) + list(sections)
    ids = []
    for i, s in enumerate(sections):
        ids.append(f"s{i + 1}-{_slug(s.title)}")
    toc = "".join(f'<li><a href="#{i}">{html.escape(s.title)}</a></li>' for i, s in zip(ids, sections))
    blocks = [f'<section id="{i}"><h2>{html.escape(s.title)}</h2>{s.html}</section>' for i, s in zip(ids, sections)]
    first, rest = "".join(blocks[:len(lead)]), "".join(blocks[len(lead):])
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    doc = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
           f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
           f"<p class='meta'>{html.escape(subtitle)}{' - ' if subtitle else ''}generated {stamp} by "
           f"regmix-megatron</p>{first}<nav><ul>{toc}</ul></nav>{rest}</body></html>\n")
    if png_dir is not None:
        with output_folder(png_dir, owned=("*.png",), what="--png-dir") as tmp:
            for s in sections:
                for name, png in s.images:
                    atomic_write_bytes(tmp / name, png)
    return atomic_write_text(path, doc)
