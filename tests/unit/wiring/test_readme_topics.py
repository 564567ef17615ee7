from __future__ import annotations

import re
from pathlib import Path

import pytest

from schemas.topics import CATALOGUE
from tutorstream.cli.topics import catalogue_table

pytestmark = pytest.mark.unit

README = Path(__file__).resolve().parents[3] / "README.md"
START, END = "<!-- topics:start -->", "<!-- topics:end -->"


def test_the_readme_topic_table_is_the_catalogue() -> None:
    text = README.read_text()
    table = text[text.index(START) + len(START) : text.index(END)].strip()

    assert table == catalogue_table(), "regenerate it with `tutorstream topics table`"


def test_the_table_has_one_row_per_catalogue_topic() -> None:
    rows = catalogue_table().splitlines()[2:]

    assert [row.split("|")[1].strip(" `") for row in rows] == [spec.name for spec in CATALOGUE]
    # Six cells per row: a "|" inside a cell is escaped, so it does not split the row.
    assert all(len(re.split(r"(?<!\\)\|", row)) == 8 for row in rows)
