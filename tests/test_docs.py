"""The README and docs/*.md: every relative link points to a file that exists, every
#anchor to a heading of its target (GitHub's anchor rules), and the README stays short."""

import re
from pathlib import Path

import pytest
from conftest import REPO

MAX_README_LINES = 320

LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~)")
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
EXTERNAL = ("http://", "https://", "mailto:")


def documents(repo: Path = REPO) -> list[Path]:
    return [repo / "README.md", *sorted((repo / "docs").glob("*.md"))]


def prose_lines(text: str) -> list[str]:
    """The document's lines outside fenced code blocks, with inline code spans removed."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(CODE_SPAN.sub("", line))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: its text without markup, lowercased, punctuation but
    '-' and '_' dropped, spaces turned into '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = text.replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor of a document's headings; a repeated heading gets -1, -2, ... as on GitHub."""
    found: set[str] = set()
    counts: dict[str, int] = {}
    for line in prose_lines(path.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        n = counts.get(base, 0)
        counts[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def links(path: Path) -> list[str]:
    return [
        target
        for line in prose_lines(path.read_text(encoding="utf-8"))
        for target in LINK.findall(line)
        if not target.startswith(EXTERNAL)
    ]


def broken_links(path: Path) -> list[str]:
    """The relative links of one document that do not resolve, each with the reason."""
    problems = []
    for target in links(path):
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            problems.append(f"{path.name}: {target}: no such file")
            continue
        if anchor:
            if dest.suffix != ".md" or dest.is_dir():
                problems.append(f"{path.name}: {target}: an anchor into a file that is not markdown")
            elif anchor not in anchors(dest):
                problems.append(f"{path.name}: {target}: no heading with this anchor in {dest.name}")
    return problems


@pytest.mark.parametrize("path", documents(), ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(path):
    assert broken_links(path) == []


def test_documents_have_links():
    """The checker finds the README's links at all (a regex that matched nothing would pass)."""
    targets = links(REPO / "README.md")
    assert "docs/architecture.md" in targets
    assert any("#" in target for target in targets)


def test_a_broken_link_is_found(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("# A page\n\n## Some section: here\n", encoding="utf-8")
    readme = tmp_path / "README.md"
    readme.write_text(
        "# Title\n\n"
        "[ok](docs/page.md) [ok](docs/page.md#some-section-here) [ok](#title)\n"
        "[web](https://example.com/missing.md) `[code](missing.md)`\n"
        "```\n[fenced](missing.md)\n```\n"
        "[gone](docs/missing.md) [bad anchor](docs/page.md#no-such) [bad self](#nope)\n",
        encoding="utf-8",
    )
    assert broken_links(readme) == [
        "README.md: docs/missing.md: no such file",
        "README.md: docs/page.md#no-such: no heading with this anchor in page.md",
        "README.md: #nope: no heading with this anchor in README.md",
    ]
    assert [p.name for p in documents(tmp_path)] == ["README.md", "page.md"]


def test_slug_follows_github():
    assert (
        slug("Keras 1 vs Keras 3: what the shipped configs fix")
        == "keras-1-vs-keras-3-what-the-shipped-configs-fix"
    )
    assert slug("Results: the tutorial's study, reproduced") == "results-the-tutorials-study-reproduced"
    assert slug("Which differences are real?") == "which-differences-are-real"
    assert slug("`fast.yaml` and snake_case") == "fastyaml-and-snake_case"


def test_readme_is_short():
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines (at most {MAX_README_LINES})"
