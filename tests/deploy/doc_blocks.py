"""The commands the docs show, read from the docs themselves: a fenced block right after a
`<!-- tested: NAME -->` marker is the command a test runs (so docs and tests cannot drift)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEPLOY_README = REPO / "deploy" / "ray" / "README.md"


def doc_block(name: str, path: Path = DEPLOY_README) -> str:
    """The body of the fenced block after `<!-- tested: name -->` in `path`, continuation lines joined."""
    text = path.read_text()
    m = re.search(rf"<!-- tested: {re.escape(name)} -->\s*```[a-z]*\n(.*?)```", text, re.S)
    if m is None:
        raise AssertionError(f"{path}: no fenced block after <!-- tested: {name} -->")
    return m.group(1).replace("\\\n", " ").strip()


def doc_block_names(path: Path = DEPLOY_README) -> list[str]:
    return re.findall(r"<!-- tested: ([\w-]+) -->", path.read_text())
