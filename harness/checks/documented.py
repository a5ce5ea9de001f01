"""Is an answer one the contract documents for its operation: its status, media type and body schema?

Sans-I/O: built from the OpenAPI document, fed one answer at a time. The load scenario
`contract_mix` samples its answers through it (LD-CONTRACT-UNDER-LOAD).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from harness.checks.envelope import parse_json

_DOC = "urn:harness:openapi:documented"
METHODS = ("get", "put", "post", "delete", "patch")


class DocumentedAnswers:
    """The documented answers of every operation of an OpenAPI 3.1 document."""

    def __init__(self, openapi: Mapping[str, Any]) -> None:
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT202012

        self._doc = openapi
        self._jsonschema: Any = importlib.import_module("jsonschema")
        self._registry: Any = Registry().with_resource(
            _DOC, Resource.from_contents(dict(openapi), default_specification=DRAFT202012))
        self._validators: dict[str, Any] = {}
        # Operation -> status -> (the response object, its JSON pointer in the document).
        self.responses: dict[str, dict[str, tuple[Any, str]]] = {}
        for path, item in (openapi.get("paths") or {}).items():
            for method in METHODS:
                operation = (item or {}).get(method)
                if isinstance(operation, dict):
                    base = f"/paths/{_escape(path)}/{method}/responses"
                    self.responses[f"{method.upper()} {path}"] = {
                        str(code): self._resolve(answer, f"{base}/{_escape(str(code))}")
                        for code, answer in (operation.get("responses") or {}).items()}

    def _resolve(self, value: Any, pointer: str) -> tuple[Any, str]:
        """A `$ref` to a component of this document, followed (responses may be shared)."""
        seen = 0
        while isinstance(value, dict) and isinstance(value.get("$ref"), str) and seen < 10:
            pointer = value["$ref"].removeprefix("#")
            node: Any = self._doc
            for part in pointer.removeprefix("/").split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                node = node.get(part) if isinstance(node, dict) else None
            value, seen = node, seen + 1
        return value, pointer

    def statuses(self, operation: str) -> set[int]:
        """The explicit status codes the operation documents."""
        return {int(code) for code in self.responses.get(operation, {}) if code.isdigit()}

    def problem(self, operation: str, status: int, content_type: str, body: bytes) -> str | None:
        """Why this answer is not documented for `operation` ("METHOD /path/{template}"), or None."""
        answers = self.responses.get(operation)
        if answers is None:
            return None  # not an operation of the contract: nothing to judge by
        found = answers.get(str(status)) or answers.get(f"{status // 100}XX") or answers.get("default")
        if found is None:
            return f"{operation} answered {status}, which the contract does not document for it " \
                   f"(documented: {', '.join(sorted(answers))})"
        answer, pointer = found
        content = answer.get("content") if isinstance(answer, dict) else None
        if not content or not body:
            return None
        media = content_type.split(";", 1)[0].strip().lower()
        if media not in content:
            return f"{operation} {status} answered {media or 'no content type'}, the contract " \
                   f"documents {', '.join(sorted(content))}"
        schema = (content[media] or {}).get("schema")
        if schema is None or not (media.endswith("json")):
            return None
        parsed, data = parse_json(body)
        if not parsed:
            return f"{operation} {status} declares {media} but its body is not JSON"
        return self._schema_error(f"{pointer}/content/{_escape(media)}/schema", data,
                                  f"{operation} {status}")

    def _schema_error(self, pointer: str, data: Any, where: str) -> str | None:
        validator = self._validators.get(pointer)
        if validator is None:
            # By reference into the document, so that its own `#/components/...` refs resolve.
            validator = self._validators[pointer] = self._jsonschema.Draft202012Validator(
                {"$ref": f"{_DOC}#{pointer}"}, registry=self._registry)
        error = next(iter(sorted(validator.iter_errors(data), key=lambda e: list(e.path))), None)
        if error is None:
            return None
        at = "/".join(str(p) for p in error.absolute_path) or "(the body)"
        return f"{where}: {at}: {str(error.message)[:200]}"


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")
