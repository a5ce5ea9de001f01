"""The README's table of documented behaviours against docs/checks.md: no row names a check that
does not exist, no check is left without a row, and the rows the audit found partial are complete."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECK_ID = re.compile(r"`((?:ST|CT|LC|RL|LD|AG)-[A-Z0-9]+(?:-[A-Z0-9]+)*)`")
ROW = re.compile(r"^\| ([A-G]\d+) \| (.+) \| (.+) \| (.+) \|$", re.M)
# Issue #16's audit found these rows only partly checked.
AUDITED = ("A10", "B3", "B5", "C1", "C4")


def _rows() -> dict[str, tuple[str, str, str]]:
    text = (ROOT / "README.md").read_text()
    section = text.split("### What each documented behaviour is judged by", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, tuple[str, str, str]] = {}
    for row_id, behaviour, judged, coverage in ROW.findall(section):
        assert row_id not in rows, f"row {row_id} twice"
        rows[row_id] = (behaviour, judged, coverage)
    return rows


def _documented() -> set[str]:
    text = (ROOT / "docs" / "checks.md").read_text()
    return set(re.findall(r"^\| `((?:ST|CT|LC|RL|LD|AG)-[A-Z0-9-]+)`[^|]*\|", text, re.M))


def test_every_check_named_by_a_row_is_documented() -> None:
    documented = _documented()
    for row_id, (_, judged, _) in _rows().items():
        unknown = set(CHECK_ID.findall(judged)) - documented
        assert not unknown, f"row {row_id} names checks docs/checks.md does not have: {sorted(unknown)}"


def test_every_documented_check_has_a_row() -> None:
    named = {check for _, judged, _ in _rows().values() for check in CHECK_ID.findall(judged)}
    assert _documented() - named == set(), "checks without a row in the README table"


def test_every_row_says_how_complete_it_is() -> None:
    rows = _rows()
    assert len(rows) >= 40
    for row_id, (_, _, coverage) in rows.items():
        assert coverage.startswith(("complete", "partial: ")), f"row {row_id}: {coverage!r}"
        # A partial row says what is missing.
        assert coverage != "partial: ", row_id


def test_the_audited_rows_are_complete() -> None:
    rows = _rows()
    for row_id in AUDITED:
        assert rows[row_id][2].startswith("complete"), (row_id, rows[row_id])
