"""A report opened in a real headless Chromium (Debian's package): does it load, do its images render, is the
answer on the first screen, does anything overflow the page sideways?

The page is copied with a small script appended that measures, after ``load``, in the browser's own layout, and
writes the measurements into the DOM; ``chromium --dump-dom`` prints that DOM. No network, a fresh profile.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
WIDTH, HEIGHT = 1280, 800

_PROBE = """<script>
window.addEventListener('load', function () {
  var imgs = Array.from(document.images);
  var answer = document.getElementById('answer');
  var r = answer ? answer.getBoundingClientRect() : null;
  var out = {
    images: imgs.length,
    broken: imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); }).length,
    answer_top: r ? r.top + window.scrollY : null,
    viewport_height: window.innerHeight,
    page_width: document.documentElement.scrollWidth,
    viewport_width: document.documentElement.clientWidth,
    answer_text: answer ? answer.innerText.slice(0, 4000) : ''
  };
  var pre = document.createElement('pre');
  pre.id = 'regmix-probe';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def ensure_chromium() -> str | None:
    """The Chromium binary, installed from Debian's packages when missing and possible; None otherwise."""
    if Path(CHROMIUM).is_file():
        return CHROMIUM
    if shutil.which("apt-get") and os.geteuid() == 0:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        install = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
        if subprocess.run(install, capture_output=True, env=env, timeout=1200).returncode != 0:
            subprocess.run(["apt-get", "update"], capture_output=True, env=env, timeout=600)
            subprocess.run(install, capture_output=True, env=env, timeout=1200)
    return CHROMIUM if Path(CHROMIUM).is_file() else None


def measure(report: Path, chromium: str = CHROMIUM) -> dict:
    """The probe's measurements of ``report`` rendered at 1280x800."""
    with tempfile.TemporaryDirectory(prefix="regmix-browser-") as tmp:
        page = Path(tmp) / "page.html"
        page.write_text(report.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"), encoding="utf-8")
        proc = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp}/profile", f"--window-size={WIDTH},{HEIGHT}", "--virtual-time-budget=10000",
             "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=300)
    found = re.search(r'<pre id="regmix-probe">(.*?)</pre>', proc.stdout, re.S)
    assert found, f"chromium printed no measurements (exit {proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))
