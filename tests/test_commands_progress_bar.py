"""The CLI progress bar (regmix_megatron/commands/progress_bar.py): plain lines, not bar redraws, off a terminal."""

from __future__ import annotations

import io

from regmix_megatron.commands.progress_bar import ProgressBar, is_interactive


def test_plain_lines_off_a_terminal():
    out = io.StringIO()  # not a terminal
    assert not is_interactive(out)
    bar = ProgressBar(100, desc="search", unit="cand", file=out)
    assert not bar.interactive
    for done in range(0, 101, 5):
        bar.update_to(done)
    bar.set_note("almost")
    bar.write("a message")
    bar.close()
    bar.close()  # closing twice prints nothing more
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()  # no redraws, no escape codes
    assert lines[0] == "search: 0/100 cand (0%)"
    counts = [line for line in lines if line.startswith("search: ") and "almost" not in line]
    # one line at the start, one per tenth of the total, one at the end
    assert counts[1:11] == [f"search: {10 * k}/100 cand ({10 * k}%)" for k in range(1, 11)]
    assert "search: 100/100 cand (100%) almost" in lines and "a message" in lines
    assert lines[-1] == "search: 100/100 cand (100%) almost"


def test_counts_never_go_backwards_and_total_can_shrink():
    out = io.StringIO()
    bar = ProgressBar(10, desc="sweep", unit="run", initial=4, file=out)
    bar.update_to(3)
    assert bar.n == 4
    bar.update(2)
    bar.set_total(8)
    assert (bar.n, bar.total) == (6, 8)
    bar.close()
    assert out.getvalue().splitlines()[-1] == "sweep: 6/8 run (75%)"


def test_interactive_bar_is_tqdm():
    out = io.StringIO()
    with ProgressBar(5, desc="x", file=out, interactive=True) as bar:
        assert bar.interactive
        bar.update(5)
    assert "\r" in out.getvalue()  # tqdm redraws in place
