"""What the README and docs/ point at: links, anchors, module paths, files, commands.

Shared by `tests/test_docs.py` (which asserts that every pointer resolves) so that a module
move or a heading rename cannot leave a stale reference behind.

>>> slug("`features.<set>` (`driftline.features/1`)")
'featuresset-driftlinefeatures1'
"""

from __future__ import annotations

import re
from pathlib import Path

from tests import ROOT

LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6}) (.+)$")
MODULE = re.compile(r"`((?:features|dataflows)(?:\.[a-z_]+)+)")
FILE = re.compile(r"`((?:features|dataflows|tests|bench|deploy|docs)/[\w./-]+\.(?:py|toml|json|yml|yaml|md|png))`")
COMMAND = re.compile(r"(?:`|bin/)driftline ([a-z][a-z-]+)(?: ([a-z][a-z-]+))?")


def doc_files() -> list[Path]:
    """The README and every page under docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def prose(text: str) -> list[str]:
    """The lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a markdown file's headings."""
    return {slug(m.group(2)) for line in prose(path.read_text()) if (m := HEADING.match(line))}


def links(path: Path) -> list[str]:
    """Every link target in a markdown file's prose (external links included)."""
    return [m.group(1) for line in prose(path.read_text()) for m in LINK.finditer(line)]


def module_exists(dotted: str) -> bool:
    """True when `dotted` names a module or package, or an attribute path inside one."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        base = ROOT.joinpath(*parts[:end])
        if base.with_suffix(".py").is_file() or (base / "__init__.py").is_file():
            return True
    return False
