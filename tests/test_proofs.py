"""Every check id of every suite has a live fault proof, or a written reason why it has none.

docs/checks.md gives each check a row whose proof column (the third) names the faults that
prove it. A named fault must be one the reference server knows, and a test file must use that
fault and name that check (the live proof). A row naming no fault must say instead how the check
is shown (a test file, a hostile target, "no fault: ...").
"""

from __future__ import annotations

import re
from pathlib import Path

from harness.server.faults import FAULTS
from tests.test_layout import _registered_checks

ROOT = Path(__file__).resolve().parent.parent
ROW = re.compile(r"^\|\s*`((?:ST|CT|LC|RL|LD|AG)-[A-Z0-9-]+)`[^|]*\|[^|]*\|([^|]*)\|", re.MULTILINE)
TICKED = re.compile(r"`([a-z0-9][a-z0-9-]*)`")
# A row without a fault must point at how the check is shown instead.
REASON = re.compile(r"tests/|hostile|no fault|no server fault|synthetic|unit test|--lifecycle|Prism|"
                    r"another client|a client|a server started", re.IGNORECASE)


def _proof_column() -> dict[str, str]:
    rows: dict[str, str] = {}
    for match in ROW.finditer((ROOT / "docs" / "checks.md").read_text()):
        rows.setdefault(match.group(1), match.group(2).strip())
    return rows


def _test_texts() -> dict[Path, str]:
    return {path: path.read_text() for path in (ROOT / "tests").rglob("test_*.py")}


def test_every_check_has_a_live_fault_proof_or_a_reason() -> None:
    rows = _proof_column()
    texts = _test_texts()
    missing = sorted(_registered_checks() - rows.keys())
    assert not missing, f"checks without a row in docs/checks.md: {missing}"
    unproven: list[str] = []
    for check, proof in sorted(rows.items()):
        faults = [name for name in TICKED.findall(proof) if name in FAULTS]
        unknown = [name for name in TICKED.findall(proof)
                   if "-" in name and name not in FAULTS and not name.startswith("-")]
        assert not unknown, f"{check}: the proof names faults the server does not know: {unknown}"
        if faults:
            live = [f for f in faults if any(f'"{f}"' in text and check in text for text in texts.values())]
            if not live:
                unproven.append(f"{check}: no test uses {faults} and names {check}")
        elif not REASON.search(proof):
            unproven.append(f"{check}: names no fault and gives no reason ({proof!r})")
    assert not unproven, "\n".join(unproven)
