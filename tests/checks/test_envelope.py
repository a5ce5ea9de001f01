"""The error-answer rules: the wanted problem, and the docs' titles (kept equal to the contract's)."""

from __future__ import annotations

from typing import Any

import yaml

from harness.checks.envelope import DOCUMENTED_TITLES, error_answer_gaps, title_gap
from harness.contract import contracts_dir


def _problem(code: str, title: str, status: int) -> dict[str, Any]:
    return {"type": f"https://api.inference.sh/errors/{code}", "title": title, "status": status,
            "detail": "x", "error": {"code": code, "message": "x"}}


def test_the_wanted_error_answer_has_no_gaps() -> None:
    assert error_answer_gaps(404, _problem("app_not_found", "App not found", 404), 404,
                             "app_not_found") == []


def test_a_wrong_status_or_code_or_body_is_named() -> None:
    body = _problem("validation_failed", "Input validation failed", 422)
    assert error_answer_gaps(422, body, 404, "app_not_found") == [
        "HTTP 422, not 404", "the error code is 'validation_failed', not 'app_not_found'"]
    assert error_answer_gaps(404, "Not Found", 404, "app_not_found") == [
        "the body is not a problem (type, title, status, detail)"]


def test_titles_are_the_docs() -> None:
    assert title_gap(_problem("unauthorized", "Invalid API key", 401), "unauthorized") is None
    assert title_gap(_problem("unauthorized", "Unauthorized", 401), "unauthorized") == (
        "title 'Unauthorized', the docs say 'Invalid API key'")
    assert title_gap(None, "app_not_found") is not None


def test_documented_titles_are_the_contracts() -> None:
    # One fact in two places: the docs' "Common errors" and openapi.yaml's problem schemas.
    schemas = yaml.safe_load((contracts_dir() / "openapi.yaml").read_text())["components"]["schemas"]
    titles = {}
    for schema in schemas.values():
        for part in schema.get("allOf", []):
            props = part.get("properties", {})
            code = props.get("error", {}).get("properties", {}).get("code", {}).get("const")
            if code and "title" in props:
                titles[code] = props["title"]["const"]
    assert {code: titles[code] for code in DOCUMENTED_TITLES} == DOCUMENTED_TITLES
