"""Static checks of the contract files in contracts/ (no server involved).

openapi.yaml must be a valid OpenAPI 3.1 document that agrees with limits.yaml and
lifecycle.yaml; both lifecycle files must describe a sane status graph.
"""

from __future__ import annotations

import itertools
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from openapi_schema_validator import OAS31Validator, oas31_format_checker
from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from harness.contract import load_chat_lifecycle

ROOT = Path(__file__).resolve().parents[1]
CONTRACTS = ROOT / "contracts"
OPENAPI = CONTRACTS / "openapi.yaml"
LIMITS = CONTRACTS / "limits.yaml"
LIFECYCLE = CONTRACTS / "lifecycle.yaml"
LIFECYCLE_DOCS = CONTRACTS / "lifecycle-docs.yaml"

HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
RATE_LIMIT_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
PROBLEM_JSON = "application/problem+json"

# lifecycle file -> its happy path (received ... completed)
LIFECYCLES: dict[str, list[int]] = {
    "lifecycle.yaml": [1, 2, 3, 4, 5, 6, 7, 9, 10],
    "lifecycle-docs.yaml": [1, 2, 3, 4, 5, 6, 7, 8, 9],
}


@cache
def _load(path: Path) -> Any:
    with path.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def spec() -> dict[str, Any]:
    data: dict[str, Any] = _load(OPENAPI)
    return data


def limits() -> dict[str, Any]:
    data: dict[str, Any] = _load(LIMITS)
    return data


def lifecycle(name: str) -> dict[str, Any]:
    data: dict[str, Any] = _load(CONTRACTS / name)
    return data


def resolve(node: Any) -> Any:
    """Follow local `$ref`s (`#/...`) until a non-reference node is reached."""
    seen: set[str] = set()
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert isinstance(ref, str) and ref.startswith("#/"), f"non-local $ref {ref!r}"
        assert ref not in seen, f"$ref cycle at {ref}"
        seen.add(ref)
        target: Any = spec()
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def operations() -> dict[str, dict[str, Any]]:
    """`"METHOD /path"` -> operation object."""
    out: dict[str, dict[str, Any]] = {}
    for path, item in spec()["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                out[f"{method.upper()} {path}"] = item[method]
    return out


def is_bearer(op: dict[str, Any]) -> bool:
    security = op.get("security", spec().get("security", []))
    return any("bearerAuth" in requirement for requirement in security)


def schema_validator(schema: Any) -> Any:
    """An OpenAPI 3.1 schema validator whose `#/...` refs resolve inside openapi.yaml."""
    resource = Resource.from_contents(spec(), default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource("urn:openapi", resource)
    if isinstance(schema, dict) and set(schema) == {"$ref"}:
        schema = {"$ref": "urn:openapi" + schema["$ref"]}
    return OAS31Validator(schema, registry=registry, format_checker=oas31_format_checker)


def schema_enum(schema: Any) -> list[Any]:
    return list(resolve(schema)["enum"])


# ---------------------------------------------------------------- openapi.yaml


def test_openapi_validates() -> None:
    document, base_uri = read_from_filename(str(OPENAPI))
    validate(document, base_uri=base_uri)
    assert document["openapi"] == "3.1.0"


def test_operation_ids_unique_and_present() -> None:
    ids = [op.get("operationId") for op in operations().values()]
    assert None not in ids
    assert len(ids) == len(set(ids))


def test_every_limits_operation_exists() -> None:
    ops = operations()
    listed = [op for group in limits()["groups"].values() for op in group["operations"]]
    listed += limits()["unlimited"]
    missing = [op for op in listed if op not in ops]
    assert not missing, f"in limits.yaml but not in openapi.yaml: {missing}"


def test_limits_groups_match_security_and_extension() -> None:
    groups = limits()["groups"]
    group_of: dict[str, str] = {}
    for name, group in groups.items():
        for op in group["operations"]:
            assert op not in group_of, f"{op} is in two groups"
            group_of[op] = name
    unlimited = set(limits()["unlimited"])
    for key, op in operations().items():
        if is_bearer(op):
            assert key in group_of, f"bearer operation {key} is in no rate-limit group"
            assert op.get("x-rate-limit-group") == group_of[key], key
            assert f"**{group_of[key]}**" in op["description"], f"{key}: group not described"
        else:
            assert key not in group_of, f"unauthenticated {key} has a rate-limit group"
            assert "x-rate-limit-group" not in op, key
    for key in unlimited:
        assert not is_bearer(operations()[key]), f"{key} is unlimited but needs a key"


def test_unauthenticated_operations() -> None:
    open_ops = {key for key, op in operations().items() if not is_bearer(op)}
    assert open_ops == {"PUT /upload/{token}", "GET /files/{id}/{filename}", "GET /healthz"}
    scheme = spec()["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")


def test_rate_limit_headers_on_bearer_responses() -> None:
    """2xx/4xx of a bearer operation carry them; 401 (no key) and 5xx do not promise them."""
    for key, op in operations().items():
        for code, response in op["responses"].items():
            headers = resolve(response).get("headers", {})
            documented = [h for h in RATE_LIMIT_HEADERS if h in headers]
            if is_bearer(op) and code != "401" and not code.startswith("5"):
                assert documented == list(RATE_LIMIT_HEADERS), f"{key} {code}: {documented}"
                for name in RATE_LIMIT_HEADERS:
                    header = resolve(headers[name])
                    assert header.get("required") is True, f"{key} {code} {name}"
                    assert resolve(header["schema"])["type"] == "integer"
            elif not is_bearer(op) or code == "401":
                assert not documented, f"{key} {code} has rate-limit headers: {documented}"


def test_rate_limited_responses_have_retry_after() -> None:
    for key, op in operations().items():
        if not is_bearer(op):
            continue
        assert "429" in op["responses"], f"{key} lacks a 429"
        assert "401" in op["responses"], f"{key} lacks a 401"
        headers = resolve(op["responses"]["429"])["headers"]
        retry_after = resolve(headers["Retry-After"])
        assert retry_after["required"] is True
        assert resolve(retry_after["schema"])["minimum"] == 1


def test_limits_headers_are_the_openapi_headers() -> None:
    names = limits()["headers"]
    headers = spec()["components"]["headers"]
    for role in ("limit", "remaining", "reset", "retry_after"):
        assert names[role] in headers, role


def test_error_responses_are_problems_with_matching_status() -> None:
    for key, op in operations().items():
        for code, ref in op["responses"].items():
            if int(code) < 400:
                continue
            response = resolve(ref)
            # The agent operations send problems as application/json (the async Agent reads
            # only that); they say so in x-error-media-type.
            media = op.get("x-error-media-type", PROBLEM_JSON)
            assert list(response["content"]) == [media], f"{key} {code}"
            schema = resolve(response["content"][media]["schema"])
            parts = [resolve(part) for part in schema["allOf"]]
            assert parts[0] is resolve({"$ref": "#/components/schemas/Problem"})
            props = parts[1]["properties"]
            assert props["status"]["const"] == int(code), f"{key} {code}"
            codes = props["error"]["properties"]["code"]
            problem_codes = codes.get("enum", [codes.get("const")])
            types = props["type"].get("enum", [props["type"].get("const")])
            assert types == [f"https://api.inference.sh/errors/{c}" for c in problem_codes], key


def test_rate_limited_problem_code_matches_limits() -> None:
    rejected = limits()["rejected"]
    response = resolve({"$ref": "#/components/responses/RateLimited"})
    schema = resolve(response["content"][PROBLEM_JSON]["schema"])
    props = schema["allOf"][1]["properties"]
    assert props["status"]["const"] == rejected["status"]
    assert props["error"]["properties"]["code"]["const"] == rejected["problem_code"]


def test_success_bodies_are_enveloped() -> None:
    envelope = resolve({"$ref": "#/components/schemas/Envelope"})
    for key, op in operations().items():
        if key in {"GET /healthz", "GET /files/{id}/{filename}", "GET /tasks/{id}/stream",
                   "GET /chats/{id}/stream"}:
            continue
        for code, ref in op["responses"].items():
            if not code.startswith("2"):
                continue
            content = resolve(ref).get("content")
            if code == "204":
                assert content is None, f"{key} 204 has a body"
                continue
            schema = resolve(content["application/json"]["schema"])
            assert resolve(schema["allOf"][0]) is envelope, f"{key} {code} is not enveloped"


def test_task_status_enum_matches_lifecycle() -> None:
    task = resolve({"$ref": "#/components/schemas/Task"})
    statuses = lifecycle("lifecycle.yaml")["statuses"]
    assert schema_enum(task["properties"]["status"]) == sorted(statuses)
    assert set(schema_enum(task["properties"]["status_text"])) == set(statuses.values())
    for name in ("TaskEvent", "TaskStatusDTO"):
        schema = resolve({"$ref": f"#/components/schemas/{name}"})
        assert schema_enum(schema["properties"]["status"]) == sorted(statuses), name


def test_task_schema_ties_output_and_error_to_status() -> None:
    ts = "2026-01-02T03:04:05.678Z"
    task = {
        "id": "task_1",
        "short_id": "task_1",
        "status": 10,
        "status_text": "completed",
        "app": "infsh/echo",
        "input": {"message": "hi"},
        "output": {"message": "hi"},
        "error": None,
        "logs": [],
        "events": [],
        "created_at": ts,
        "updated_at": ts,
    }
    validator = schema_validator({"$ref": "#/components/schemas/Task"})
    validator.validate(task)
    assert not validator.is_valid({**task, "output": None})
    assert not validator.is_valid({**task, "status": 11, "status_text": "failed"})
    validator.validate({**task, "status": 11, "status_text": "failed", "error": "boom"})
    # JSON Schema counts 10.0 as an integer, so a float status (Unknown to the Python SDK)
    # cannot be caught here; the conformance suite has to check the raw JSON for it.
    assert not validator.is_valid({**task, "status": "10"})
    assert not validator.is_valid({**task, "status": 14})
    assert not validator.is_valid({**task, "created_at": "2026-01-02T03:04:05+00:00"})
    line = schema_validator({"$ref": "#/components/schemas/StreamLine"})
    line.validate({"data": task, "fields": ["status", "output"]})
    line.validate({"type": "heartbeat"})
    assert not line.is_valid({"type": "ping"})
    assert not line.is_valid({"data": task})


def test_request_examples_match_their_schemas() -> None:
    for key, op in operations().items():
        body = op.get("requestBody")
        if body is None:
            continue
        for media in resolve(body)["content"].values():
            validator = schema_validator(media["schema"])
            for name, example in media.get("examples", {}).items():
                errors = [e.message for e in validator.iter_errors(resolve(example)["value"])]
                assert not errors, f"{key} example {name}: {errors}"


def test_reference_app_examples_match_app_schemas() -> None:
    apps = resolve({"$ref": "#/components/schemas/RunRequest"})["x-reference-apps"]["apps"]
    run = operations()["POST /apps/run"]["requestBody"]["content"]["application/json"]
    checked = set()
    for example in run["examples"].values():
        value = example["value"]
        name = re.sub(r"[@:].*$", "", value["app"])
        app = apps[name]
        schema_validator(app["input"]).validate(value["input"])
        if "setup" in value:
            schema_validator(app["setup"]).validate(value["setup"])
        checked.add(name)
    assert checked == set(apps), f"apps without an example: {set(apps) - checked}"


def test_run_app_links() -> None:
    response = resolve(operations()["POST /apps/run"]["responses"]["200"])
    links = {resolve(link)["operationId"]: resolve(link) for link in response["links"].values()}
    ids = {op["operationId"] for op in operations().values()}
    for target in ("getTask", "getTaskStatus", "streamTask", "cancelTask", "deleteTask", "listTasks"):
        assert target in links, f"no link to {target}"
    for target, link in links.items():
        assert target in ids
        wanted = {} if target == "listTasks" else {"id": "$response.body#/data/id"}
        assert link.get("parameters", {}) == wanted


def _links() -> list[tuple[str, str, dict[str, Any]]]:
    """(source operation, target operationId, link) of every link in the contract."""
    out = []
    for label, op in operations().items():
        for response in op["responses"].values():
            for link in resolve(response).get("links", {}).values():
                out.append((label, resolve(link)["operationId"], resolve(link)))
    return out


def test_every_operation_is_on_a_link() -> None:
    """Stateful tools reach only operations that links connect (contracts/README.md, peer tools)."""
    by_id = {op["operationId"]: label for label, op in operations().items()}
    linked = {source for source, _, _ in _links()} | {by_id[target] for _, target, _ in _links()}
    assert linked == set(operations())


def test_upload_workflow_links() -> None:
    """POST /files -> PUT upload -> GET file: the uri serves bytes only after the upload."""
    links = {(source, target): link for source, target, link in _links()}
    upload = links[("POST /files", "uploadFileContent")]["parameters"]["token"]
    assert upload.startswith("$response.body#/data/0/upload_url#regex:")
    assert ("POST /files", "downloadFile") not in links
    download = links[("PUT /upload/{token}", "downloadFile")]["parameters"]
    assert download["id"] == "$response.body#/data/id"
    assert download["filename"].startswith("$response.body#/data/uri#regex:")
    pattern = re.compile(upload.split("#regex:", 1)[1])
    assert pattern.search("http://127.0.0.1:8080/upload/tok_1-x").group(1) == "tok_1-x"  # type: ignore[union-attr]
    name = re.compile(download["filename"].split("#regex:", 1)[1])
    assert name.search("https://api.example/files/file_1/image.png").group(1) == "image.png"  # type: ignore[union-attr]


def test_run_app_documents_per_app_validation() -> None:
    """A schema-valid RunRequest may get 422: the app's own input schema is the target's."""
    response = resolve(operations()["POST /apps/run"]["responses"]["422"])
    assert "app's own input" in response["description"]
    assert "422" in operations()["POST /apps/run"]["description"]


def test_stream_media_types() -> None:
    op = operations()["GET /tasks/{id}/stream"]
    content = resolve(op["responses"]["200"])["content"]
    assert list(content) == ["application/x-ndjson", "text/event-stream"]
    assert op["x-stream"]["default_media_type"] == "application/x-ndjson"
    cadence = op["x-stream"]
    assert cadence["heartbeat_interval_seconds_max_exclusive"] <= 15
    assert (
        cadence["heartbeat_interval_seconds_default"]
        < cadence["heartbeat_interval_seconds_max_exclusive"]
    )
    # The Python SDK drops a stream after 30 s without a non-heartbeat line (WIRE.md section 9).
    assert cadence["update_interval_seconds_max"] < 30


# ---------------------------------------------------------------- lifecycle files


@pytest.mark.parametrize("name", sorted(LIFECYCLES))
def test_lifecycle_references_known_statuses(name: str) -> None:
    lc = lifecycle(name)
    statuses = lc["statuses"]
    assert all(isinstance(code, int) for code in statuses), "status codes must be integers"
    assert len(set(statuses.values())) == len(statuses), "duplicate status names"
    for field in ("initial", "terminal", "setup_phases"):
        unknown = set(lc[field]) - set(statuses)
        assert not unknown, f"{field}: unknown {unknown}"
    for field in ("completed", "failed", "cancelled", "rejected", "cancelling"):
        if field in lc:
            assert lc[field] in statuses, field
    for field in ("completed", "failed", "cancelled", "rejected"):
        if field in lc:
            assert lc[field] in lc["terminal"], f"{field} is not terminal"
    for source, targets in lc["transitions"].items():
        assert source in statuses, f"unknown source {source}"
        unknown = set(targets) - set(statuses)
        assert not unknown, f"{source} -> unknown {unknown}"
        assert source not in targets, f"self-loop on {source}"


@pytest.mark.parametrize("name", sorted(LIFECYCLES))
def test_lifecycle_terminal_statuses_have_no_edges(name: str) -> None:
    lc = lifecycle(name)
    for status in lc["terminal"]:
        assert not lc["transitions"].get(status), f"terminal {status} has outgoing edges"


@pytest.mark.parametrize("name", sorted(LIFECYCLES))
def test_lifecycle_happy_path_is_a_chain(name: str) -> None:
    lc = lifecycle(name)
    path = LIFECYCLES[name]
    assert path[0] in lc["initial"]
    assert path[-1] == lc["completed"]
    for a, b in itertools.pairwise(path):
        assert b in lc["transitions"][a], f"happy path edge {a} -> {b} not allowed"


@pytest.mark.parametrize("name", sorted(LIFECYCLES))
def test_lifecycle_no_edge_leads_to_an_initial_status(name: str) -> None:
    lc = lifecycle(name)
    targets = {t for ts in lc["transitions"].values() for t in ts}
    assert not targets & set(lc["initial"]), targets & set(lc["initial"])


def test_rejected_is_only_initial() -> None:
    lc = lifecycle("lifecycle.yaml")
    assert lc["rejected"] == 13
    assert 13 in lc["initial"] and 13 in lc["terminal"]
    assert all(13 not in targets for targets in lc["transitions"].values())


@pytest.mark.parametrize("name", sorted(LIFECYCLES))
def test_lifecycle_is_acyclic_and_always_ends(name: str) -> None:
    """Never going back means no cycles; every status reachable from an initial one can end."""
    lc = lifecycle(name)
    edges: dict[int, list[int]] = {s: list(lc["transitions"].get(s) or []) for s in lc["statuses"]}
    terminal = set(lc["terminal"])

    state: dict[int, int] = {}  # 1 = on stack, 2 = done

    def visit(node: int) -> None:
        state[node] = 1
        for nxt in edges[node]:
            assert state.get(nxt) != 1, f"cycle through {node} -> {nxt}"
            if nxt not in state:
                visit(nxt)
        state[node] = 2

    reachable: set[int] = set()
    for start in lc["initial"]:
        visit(start)
        stack = [start]
        while stack:
            node = stack.pop()
            if node not in reachable:
                reachable.add(node)
                stack.extend(edges[node])
    for node in reachable - terminal:
        assert edges[node], f"non-terminal {node} is a dead end"
    assert terminal <= reachable, f"unreachable terminal statuses: {terminal - reachable}"
    assert lc["cancelled"] in reachable


def test_docs_lifecycle_differs_where_readme_says() -> None:
    sdk = lifecycle("lifecycle.yaml")["statuses"]
    docs = lifecycle("lifecycle-docs.yaml")["statuses"]
    differing = sorted(code for code in set(sdk) | set(docs) if sdk.get(code) != docs.get(code))
    assert differing == [0, 3, 8, 9, 10, 11, 12, 13]
    readme = (CONTRACTS / "README.md").read_text(encoding="utf-8")
    assert "--lifecycle contracts/lifecycle-docs.yaml" in readme


# ---------------------------------------------------------------- chat-lifecycle.yaml


def test_chat_lifecycle_states_match_the_openapi_enums() -> None:
    chats = load_chat_lifecycle(CONTRACTS / "chat-lifecycle.yaml")
    schemas = spec()["components"]["schemas"]
    assert chats.chat.states == schemas["ChatStatus"]["enum"]
    assert chats.run.states == schemas["AgentRunState"]["enum"]
    assert chats.message.states == schemas["ChatMessageStatus"]["enum"]
    assert chats.tool_invocation.states == schemas["ToolInvocationStatus"]["enum"]


def test_chat_lifecycle_machines_end_and_never_leave_an_end() -> None:
    chats = load_chat_lifecycle(CONTRACTS / "chat-lifecycle.yaml")
    for name, machine in {"chat": chats.chat, **chats.machines}.items():
        named = set(machine.transitions) | {s for edges in machine.transitions.values() for s in edges}
        assert named | set(machine.initial) | set(machine.terminal) <= set(machine.states), name
        for state in machine.terminal:
            assert not machine.transitions.get(state), f"{name}: terminal {state} has edges"
        if name == "chat":
            continue  # a chat cycles between runs
        # Runs and tool calls may wait and resume (working <-> input_required); none starts over.
        for state in machine.states:
            if state not in machine.terminal:
                assert machine.reachable[state] & set(machine.terminal), f"{name}: {state} never ends"
    assert not any("submitted" in chats.run.reachable[s] for s in chats.run.states)
    assert set(chats.python_sdk_active_run_states) <= set(chats.run.states)
