"""In-game text of two free fantasy games: Dungeon Crawl Stone Soup's descriptions of monsters, items, spells,
gods and places, and the dialogue and narration of five Battle for Wesnoth campaigns (one source per campaign
package). Small (about 0.8 MB); a held-out target with no close neighbour among the training domains: neither
literature (older prose), reference (dictionary senses) nor techdocs (manuals).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from ..documents import Document, group_entries
from ..formats import read_text
from ..sources import debian

DESCRIPTION = "in-game text of free fantasy games (Crawl's descriptions, Wesnoth campaign dialogue and narration)"
EXTRACTOR_VERSION = 1
WESNOTH_VERSION = "1:1.16.9-1"
#: Wesnoth campaign packages: Heir to the Throne, Descent into Darkness, The South Guard, Delfador's Memoirs,
#: Secrets of the Ancients
CAMPAIGNS = ("httt", "did", "tsg", "dm", "sota")
PACKAGES = (
    debian("crawl-common", "2:0.28.0-1.1", "GPL-2+"),
    *(debian(f"wesnoth-1.16-{c}", WESNOTH_VERSION, "GPL-2+") for c in CAMPAIGNS),
)
#: Crawl's English description files (``dat/descript``); quotes.txt (quotations from published books) and the
#: interface help (commands, hints, tutorial) are left out
CRAWL_FILES = ("monsters", "items", "spells", "features", "gods", "unrand", "branches", "ability", "mutations",
               "cards", "backgrounds", "species", "status", "skills", "clouds")
GROUP_CHARS = 1000

_COLOUR_TAG = re.compile(r"</?[a-z]+>")
_WML_TOKEN = re.compile(r'\[(/?)([a-z_+]+)\]|^[ \t]*([a-z_]+)[ \t]*=[ \t]*(_?[ \t]*"(?:[^"]|"")*"|[^\n]*)', re.M)
_WML_STRING = re.compile(r'^_?[ \t]*"((?:[^"]|"")*)"$')
_PANGO = re.compile(r"</?(?:i|b|u|span|big|small|tt)\b[^>]*>")


def crawl_entries(text: str) -> list[str]:
    """``Name\\n\\nDescription`` per entry of a Crawl description file (``%%%%``-separated); comment lines,
    entries computed by Lua (``{{ ... }}``), aliases (``<other entry>``) and internal keys are dropped."""
    entries = []
    for block in text.split("\n%%%%"):
        lines = [line for line in block.strip("\n%").split("\n") if not line.startswith("#")]
        body = "\n".join(lines).strip()
        name, _, description = body.partition("\n")
        description = _COLOUR_TAG.sub("", description).strip()
        if not description or "{{" in description or name.startswith("_") or re.fullmatch(r"<[^>]*>", description):
            continue
        entries.append(f"{name.strip()}\n\n{description}")
    return entries


def wml_dialogue(text: str) -> list[str]:
    """The narration (``story=`` of ``[part]``) and dialogue (``message=`` of ``[message]``, as ``Speaker:
    text``) of a Wesnoth WML file, in file order; comments and untranslatable strings are skipped."""
    text = "\n".join(line for line in text.split("\n") if not line.lstrip().startswith("#"))
    out: list[str] = []
    stack: list[dict] = []
    for m in _WML_TOKEN.finditer(text):
        closing, tag, key, value = m.groups()
        if tag is not None:
            if not closing:
                stack.append({"tag": tag})
            elif stack:
                _emit(stack.pop(), out)
            continue
        if stack:
            string = _WML_STRING.match(value.strip())
            stack[-1][key] = string.group(1).replace('""', '"') if string else value.strip()
    return out


def _emit(block: dict, out: list[str]) -> None:
    if block["tag"] == "part" and block.get("story"):
        out.append(_PANGO.sub("", block["story"]).strip())
    elif block["tag"] == "message" and block.get("message"):
        line = _PANGO.sub("", block["message"]).strip()
        speaker = block.get("speaker") or block.get("role") or block.get("id") or "narrator"
        out.append(line if speaker in ("narrator", "unit", "second_unit") else f"{speaker}: {line}")


def campaign_files(root: Path) -> list[Path]:
    """The WML files of a campaign package holding its scenarios and macros (units and maps left out)."""
    campaigns = root / "usr/share/games/wesnoth/1.16/data/campaigns"
    return sorted(p for p in campaigns.glob("*/**/*.cfg") if p.parent.name in ("scenarios", "utils"))


def extract(fetched) -> Iterator[Document]:
    descript = fetched["crawl-common"].root / "usr/share/crawl/dat/descript"
    for name in CRAWL_FILES:
        for group in group_entries(crawl_entries(read_text(descript / f"{name}.txt")), GROUP_CHARS):
            yield Document(group, "crawl-common")
    for campaign in CAMPAIGNS:
        package = f"wesnoth-1.16-{campaign}"
        for path in campaign_files(fetched[package].root):
            for group in group_entries(wml_dialogue(read_text(path)), GROUP_CHARS, sep="\n"):
                yield Document(group, package)
