"""The people's docs: every exception type the code can raise has its runbook, reachable."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from acs_khaos_dagster.store.exceptions import DEFAULT_OWNERS, ExceptionType, Owner

DOCS = Path(__file__).resolve().parent.parent / "docs"
SECTIONS = ("What it means", "Who owns it", "How to resolve it", "How to retry")
TYPES = sorted(str(t) for t in ExceptionType)


def sections(text: str) -> dict[str, str]:
    parts = re.split(r"^## (.+)$", text, flags=re.MULTILINE)
    return {title.strip(): body for title, body in zip(parts[1::2], parts[2::2], strict=True)}


def links(path: Path) -> set[Path]:
    found = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text(encoding="utf-8"))
    return {(path.parent / target).resolve() for target in found if "://" not in target}


@pytest.mark.parametrize("type_", TYPES)
def test_every_exception_type_has_a_runbook_with_the_four_sections(type_: str) -> None:
    page = DOCS / "runbooks" / f"{type_}.md"
    assert page.is_file(), f"no runbook for {type_}"
    found = sections(page.read_text(encoding="utf-8"))
    for title in SECTIONS:
        assert found.get(title, "").strip(), f"{page.name} lacks a filled '{title}' section"


@pytest.mark.parametrize("type_", TYPES)
def test_the_runbook_names_the_owner_the_queue_assigns(type_: str) -> None:
    owns = sections((DOCS / "runbooks" / f"{type_}.md").read_text(encoding="utf-8"))
    named = re.findall(r"Owner: \*\*(\w+)\*\*", owns["Who owns it"])
    assert named == [str(DEFAULT_OWNERS[ExceptionType(type_)])]


def test_every_runbook_is_for_an_exception_type_the_code_knows() -> None:
    pages = {p.stem for p in (DOCS / "runbooks").glob("*.md")}
    assert pages == set(TYPES)


def test_every_page_is_linked_from_the_index() -> None:
    linked = links(DOCS / "README.md")
    pages = {p.resolve() for p in DOCS.rglob("*.md")} - {(DOCS / "README.md").resolve()}
    assert pages - linked == set()


def test_every_link_in_the_docs_points_at_a_page_that_exists() -> None:
    for page in DOCS.rglob("*.md"):
        for target in links(page):
            assert target.exists(), f"{page.relative_to(DOCS)} links to missing {target}"


def test_the_index_names_each_runbook_with_its_owner() -> None:
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    for type_ in TYPES:
        row = re.search(rf"^\| \[{type_}\]\(runbooks/{type_}\.md\) \| (\w+) \|", index, re.M)
        assert row, f"the index has no row for {type_}"
        assert row.group(1) == str(DEFAULT_OWNERS[ExceptionType(type_)])


def test_every_owner_team_has_a_place_in_the_operating_model() -> None:
    text = (DOCS / "operating-model.md").read_text(encoding="utf-8")
    for owner in Owner:
        assert f"| {owner} |" in text


def test_the_failure_table_in_the_docs_is_the_one_the_clients_use() -> None:
    from acs_khaos_dagster.connectors.failures import markdown_table

    text = (DOCS / "outbox.md").read_text(encoding="utf-8")
    shown = text.split("<!-- failure-table:start -->")[1].split("<!-- failure-table:end -->")[0]
    assert shown.strip() == markdown_table()
