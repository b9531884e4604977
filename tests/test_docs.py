"""The documentation holds together: README.md and docs/ link only to files and headings that
exist, and the README's Make targets table lists every target of the Makefile.

Links are checked as GitHub renders them: relative to the file that contains them (or to the
repository root when they start with ``/``), anchors by GitHub's heading slugs. Links inside
fenced code blocks, inline code spans and HTML comments are text, not links, and are skipped;
so are headings inside code blocks. Headings are ATX headings (``# Title``).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
README = REPO_ROOT / "README.md"
MAKEFILE = REPO_ROOT / "Makefile"

# A documented Make target: `name: prerequisites ## help text` (what `make help` prints).
MAKE_TARGET = re.compile(r"^([a-zA-Z_-]+):.*## ", re.MULTILINE)
# An opening or closing code fence: up to three spaces, then ``` or ~~~ (three or more).
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
ATX_HEADING = re.compile(r"^ {0,3}#{1,6}(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
# Inline code: a run of backticks, its content, and a run of the same length.
CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)")
HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
# The target of an inline link or image: `](target)` or `](target "title")`; the text before
# it may itself be an image, as in a badge `[![alt](image)](link)`.
INLINE_LINK_TARGET = re.compile(r"\]\(\s*(<[^>]*>|[^\s)]*)(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
# A reference definition: `[label]: target`.
REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
# Links and images inside a heading render as their text.
LINK_IN_HEADING = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
# http:, https:, mailto: and any other scheme, or a protocol-relative //host.
EXTERNAL = re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*:|//)")
# GitHub's anchors for lines of a file it shows as code: #L10 or #L10-L20.
LINE_ANCHOR = re.compile(r"^L\d+(?:-L\d+)?$")
# github-slugger keeps letters, marks, decimal and letter numbers and connector punctuation
# (`_`); it drops other numbers (², ½), punctuation, symbols, controls and separators but the
# space (which becomes `-`) and the hyphen.
SLUG_CATEGORIES = ("L", "M", "Nd", "Nl", "Pc")


@dataclass(frozen=True)
class Link:
    """One relative link: where it is written and what it points at."""

    source: Path
    line: int
    target: str

    def __str__(self) -> str:
        return f"{self.source.relative_to(REPO_ROOT)}:{self.line}: ({self.target})"


def markdown_files() -> list[Path]:
    """README.md and every Markdown file under docs/."""
    return [README, *sorted((REPO_ROOT / "docs").rglob("*.md"))]


def closes(fence: str, line: str) -> bool:
    """Whether ``line`` closes a block opened by ``fence``: the same character, at least as many,
    and nothing after it."""
    closing = FENCE.match(line)
    return (
        closing is not None
        and closing.group(1)[0] == fence[0]
        and len(closing.group(1)) >= len(fence)
        and not line.strip().lstrip(fence[0])
    )


def prose_lines(text: str) -> list[tuple[int, str]]:
    """The lines outside fenced code blocks, numbered from 1, without HTML comments."""
    # Blank the comments but keep their newlines, so line numbers stay right.
    text = HTML_COMMENT.sub(lambda comment: "\n" * comment.group().count("\n"), text)
    lines, fence = [], None
    for number, line in enumerate(text.splitlines(), start=1):
        if fence is not None:
            if closes(fence, line):
                fence = None
        elif opening := FENCE.match(line):
            fence = opening.group(1)
        else:
            lines.append((number, line))
    return lines


def without_code_spans(line: str) -> str:
    return CODE_SPAN.sub("", line)


def relative_links(path: Path) -> list[Link]:
    """Every link and image target in ``path`` that is not an external URL."""
    links = []
    for number, line in prose_lines(path.read_text(encoding="utf-8")):
        line = without_code_spans(line)
        targets = [match.group(1) for match in INLINE_LINK_TARGET.finditer(line)]
        if definition := REFERENCE_DEFINITION.match(line):
            targets.append(definition.group(1))
        for target in targets:
            target = target.removeprefix("<").removesuffix(">")
            if target and not EXTERNAL.match(target):
                links.append(Link(path, number, target))
    return links


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading with this text, before de-duplication."""
    text = LINK_IN_HEADING.sub(r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML renders as its text
    kept = (
        character
        for character in text.lower()
        if character in " -" or unicodedata.category(character).startswith(SLUG_CATEGORIES)
    )
    return "".join(kept).replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    """The anchors of every heading in ``path``; a repeated one gets -1, -2, … as on GitHub."""
    counts: dict[str, int] = {}
    for _, line in prose_lines(path.read_text(encoding="utf-8")):
        heading = ATX_HEADING.match(line)
        if heading is None:
            continue
        base = slug = github_slug(heading.group(1) or "")
        while slug in counts:  # github-slugger: count up from the base until the slug is new
            counts[base] += 1
            slug = f"{base}-{counts[base]}"
        counts[slug] = 0
    return frozenset(counts)


def link_problem(link: Link) -> str | None:
    """Why ``link`` is broken, or None."""
    path_part, _, anchor = link.target.partition("#")
    path_part, anchor = unquote(path_part), unquote(anchor)
    if not path_part:
        target = link.source
    elif path_part.startswith("/"):
        target = REPO_ROOT / path_part.lstrip("/")
    else:
        target = link.source.parent / path_part
    target = target.resolve()
    if not target.is_relative_to(REPO_ROOT):
        return "points outside the repository"
    if not target.exists():
        return f"no such file: {target.relative_to(REPO_ROOT)}"
    if not anchor:
        return None
    if target.suffix.lower() == ".md":
        if anchor not in anchors(target):
            return f"no heading with the anchor #{anchor} in {target.relative_to(REPO_ROOT)}"
        return None
    if target.is_file() and LINE_ANCHOR.match(anchor):
        return None
    return f"#{anchor}: only Markdown headings and line numbers (#L10) are anchors"


def makefile_targets() -> list[str]:
    return MAKE_TARGET.findall(MAKEFILE.read_text(encoding="utf-8"))


def readme_make_targets_table() -> list[list[str]]:
    """The cells of the first table under the README's heading that mentions "Make targets"."""
    in_section, rows = False, []
    for _, line in prose_lines(README.read_text(encoding="utf-8")):
        if ATX_HEADING.match(line):
            if rows:
                break
            in_section = "make targets" in line.lower()
        elif in_section and line.lstrip().startswith("|"):
            # Split on pipes that are not escaped (`\|` inside a cell).
            cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
            rows.append([cell.strip() for cell in cells])
        elif in_section and rows:
            break  # the table has ended
    return rows


# -- the checks themselves ----------------------------------------------------------------


def test_there_are_markdown_files_with_links() -> None:
    """Guards the checks below against finding nothing to check."""
    assert (REPO_ROOT / "docs" / "README.md") in markdown_files()
    assert relative_links(README), "README.md has no relative links: the parser is broken"


def test_every_relative_link_resolves() -> None:
    broken = [
        f"{link}: {problem}"
        for path in markdown_files()
        for link in relative_links(path)
        if (problem := link_problem(link)) is not None
    ]
    assert not broken, f"{len(broken)} broken link(s):\n" + "\n".join(broken)


def test_every_make_target_is_in_the_readme_table() -> None:
    targets = makefile_targets()
    assert targets, "no documented target (`name: ... ## help`) found in the Makefile"
    rows = readme_make_targets_table()
    assert rows, 'README.md has no table under a heading containing "Make targets"'
    first_column = {row[0] for row in rows}
    missing = [target for target in targets if f"`make {target}`" not in first_column]
    assert not missing, "Make targets missing from the README's table: " + ", ".join(missing)
    documented = {
        match.group(1) for cell in first_column if (match := re.fullmatch(r"`make (\S+)`", cell))
    }
    stale = sorted(documented - set(targets))
    assert not stale, "the README's table lists targets the Makefile lacks: " + ", ".join(stale)


# -- the parser and the slugs, on known examples -----------------------------------------


@pytest.mark.parametrize(
    ("heading", "slug"),
    [
        ("Quick start", "quick-start"),
        (
            "Scale: out-of-core and distributed training",
            "scale-out-of-core-and-distributed-training",
        ),
        ("`make docker-test`", "make-docker-test"),
        ("Results at a glance", "results-at-a-glance"),
        ("R² and ΔR², per bit width", "r-and-δr-per-bit-width"),
        ("snake_case stays", "snake_case-stays"),
        ("Größe – über alles", "größe--über-alles"),
        ("[Linked](docs/x.md) heading", "linked-heading"),
    ],
)
def test_github_slug(heading: str, slug: str) -> None:
    assert github_slug(heading) == slug


def test_anchors_number_repeated_headings_and_skip_code(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n## Usage\n## Usage\n```bash\n# a shell comment, not a heading\n```\n## Usage-1\n",
        encoding="utf-8",
    )
    assert anchors(page) == {"title", "usage", "usage-1", "usage-1-1"}


def test_links_in_code_and_comments_are_not_links(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "[a](a.md) `[b](b.md)` ``[c](c.md)``\n"
        "<!-- [d](d.md) -->\n"
        "~~~\n[e](e.md)\n~~~\n"
        '![f](img/f.png "title") [g](https://example.org) [h](mailto:x@example.org)\n'
        "[![badge](i.svg)](j.md#part)\n"
        "[ref]: k.md\n",
        encoding="utf-8",
    )
    assert [link.target for link in relative_links(page)] == [
        "a.md",
        "img/f.png",
        "i.svg",
        "j.md#part",
        "k.md",
    ]
