"""The documentation holds together: links resolve, cited pages exist, examples parse.

The README is the front door and docs/ the manual; help texts and comments in
the code cite docs pages by path, so a page that is renamed or a heading that
is reworded must not leave a dead reference behind.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[(?:[^\]\n]|\\\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.M)
CITED_PAGE = re.compile(r"\bdocs/[A-Za-z0-9_.-]+\.md\b")


def prose(text: str) -> str:
    """The text without fenced code blocks or inline code, where brackets are not links."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading anchors by its text
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every anchor the page's headings give, with GitHub's -1, -2 suffixes for repeats."""
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(FENCE.sub("", page.read_text(encoding="utf-8"))):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def relative_links(page: Path) -> list[str]:
    return [target for target in LINK.findall(prose(page.read_text(encoding="utf-8")))
            if not re.match(r"[a-z][a-z0-9+.-]*:", target)]  # http:, https:, mailto: are not checked here


def test_the_anchor_rule_matches_githubs_on_the_headings_these_pages_use():
    assert slug("Which processor: `--backend`") == "which-processor---backend"
    assert slug("Fixed token budgets: `--budget N`") == "fixed-token-budgets---budget-n"
    assert slug("Choosing a lossy τ") == "choosing-a-lossy-τ"
    assert slug("Errors and guarantees") == "errors-and-guarantees"


def test_the_link_finder_sees_links_and_images_but_not_code(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("[a](x.md) ![b](y.png) [c](https://e.org) `[d](no.md)`\n\n```\n[e](no2.md)\n```\n"
                    "[f](z.md#part)\n")
    assert relative_links(page) == ["x.md", "y.png", "z.md#part"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(page):
    dead = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            dead.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            dead.append(f"{target}: no heading gives #{anchor}")
    assert not dead, f"{page.relative_to(ROOT)}: dead links: {dead}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_python_example_parses(page):
    blocks = re.findall(r"^```python\n(.*?)^```", page.read_text(encoding="utf-8"), re.M | re.S)
    for block in blocks:
        ast.parse(block)  # a SyntaxError names the line


def package_files() -> list[Path]:
    return sorted((ROOT / "pixelprune_cli").rglob("*.py"))


def code_files() -> list[Path]:
    """Everything that may cite a docs page: the package, benchmarks, tests, Makefile and CI script."""
    return [*package_files(), *sorted((ROOT / "bench").rglob("*.py")), *sorted((ROOT / "tests").rglob("*.py")),
            ROOT / "Makefile", ROOT / ".ci" / "run"]


def test_every_docs_page_the_code_cites_exists():
    missing = sorted({f"{file.relative_to(ROOT)}: {cited}" for file in code_files() if file.exists()
                      for cited in CITED_PAGE.findall(file.read_text(encoding="utf-8"))
                      if not (ROOT / cited).is_file()})
    assert not missing, missing


def test_the_code_cites_docs_pages_not_readme_section_titles():
    """A README section title in a help text would pin the README's layout to the code's."""
    citing = [f"{file.relative_to(ROOT)}:{n}" for file in package_files()
              for n, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1)
              if re.search(r"README(, |'s )\\?[\"A-Z]", line)]
    assert not citing, citing


def test_the_readme_stays_a_front_door():
    """About 250 lines: what it is, install, set-up, a tour, two snippets and links; the reference is in docs/."""
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 300
