"""Questions and answers: the Perl FAQ (one question per document), the Python FAQ, ChatterBot's English
conversation corpus and the fortune cookie files. Small (about 3 MB)."""

from __future__ import annotations

import re
from typing import Iterator

import yaml

from ..documents import Document, group_entries
from ..formats import read_text
from ..sources import debian, pypi

DESCRIPTION = "questions and answers, short dialogues and quips (Perl/Python FAQs, ChatterBot, fortunes)"
EXTRACTOR_VERSION = 1
PACKAGES = (
    debian("perl-doc", "5.36.0-7+deb12u3", "Artistic-1.0 or GPL-1+"),
    debian("python3.11-doc", "3.11.2-6+deb12u8", "PSF-2.0"),
    pypi("chatterbot-corpus", "1.3.3", "BSD-3-Clause", kind="wheel"),
    debian("fortunes", "1:1.99.1-7.3", "BSD-4-Clause-UC and public domain (mixed)"),
)
GROUP_CHARS = 3000


def perlfaq_questions(pod: str) -> list[str]:
    """One document per ``=head2`` question of a perlfaq pod."""
    parts = re.split(r"^(?==head2 )", pod, flags=re.M)
    return [p.strip() for p in parts[1:] if p.strip()]


def extract(fetched) -> Iterator[Document]:
    for path in sorted((fetched["perl-doc"].root / "usr/share/perl").glob("*/pod/perlfaq[1-9].pod")):
        for question in perlfaq_questions(read_text(path)):
            yield Document(question, "perl-doc")
    faq = fetched["python3.11-doc"].root / "usr/share/doc/python3.11/html/_sources/faq"
    for path in sorted(faq.glob("*.rst.txt")):
        yield Document(read_text(path), "python3.11-doc")
    for path in sorted(fetched["chatterbot-corpus"].root.glob("chatterbot_corpus/data/english/*.yml")):
        data = yaml.safe_load(read_text(path)) or {}
        dialogues = []
        for convo in data.get("conversations") or []:
            lines = [str(turn).strip() for turn in convo if str(turn).strip()]
            dialogues.append("\n".join(f"{'Q' if i % 2 == 0 else 'A'}: {t}" for i, t in enumerate(lines)))
        for group in group_entries(dialogues, GROUP_CHARS):
            yield Document(group, "chatterbot-corpus")
    for path in sorted((fetched["fortunes"].root / "usr/share/games/fortunes").iterdir()):
        if path.suffix or path.is_symlink() or not path.is_file():
            continue
        quips = read_text(path).split("\n%\n")
        for group in group_entries(quips, GROUP_CHARS, sep="\n%\n"):
            yield Document(group, "fortunes")
