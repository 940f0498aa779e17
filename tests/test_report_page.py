"""The HTML page (regmix_megatron/report/page.py): sections, escaping, embedded PNGs, files beside the page."""

from __future__ import annotations

import base64
import re

import numpy as np
import pandas as pd

from regmix_megatron.report.page import Section, build_report, figure_section, table_section, text_section


def test_sections_api_for_other_stages(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    sections = [text_section("Notes", "a < b\n\nsecond"), figure_section("A plot", fig, "caption"),
                table_section("Table", pd.DataFrame({"x": [1.23456, np.nan], "y": ["a", None]})),
                Section("Raw", "<p>raw</p>")]
    path = build_report(sections, tmp_path / "r.html", title="T & T")
    text = path.read_text()
    assert "a &lt; b" in text and "T &amp; T" in text and "<td>1.235</td>" in text and "<p>raw</p>" in text
    assert text.count("<section") == 4


def test_figures_are_embedded_and_written_beside_the_page(tmp_path):
    from regmix_megatron.report.figures import pyplot

    fig, ax = pyplot().subplots()
    ax.plot([0, 1], [0, 1])
    section = figure_section("Loss curve", fig, name="curve")
    path = build_report([section], tmp_path / "r.html", png_dir=tmp_path / "png")
    data = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', path.read_text())
    assert len(data) == 1 and base64.b64decode(data[0]) == (tmp_path / "png" / "curve.png").read_bytes()
    assert not list(tmp_path.glob(".tmp-*"))
