"""Request bodies: the pydantic models of the JSON the API accepts, and parsing into them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from harness.server.apps import validation_errors
from harness.server.problems import ApiError, invalid

Model = TypeVar("Model", bound=BaseModel)


def _integral(value: Any) -> Any:
    """JSON Schema counts 1.0 as an integer: accept integral floats where the contract says integer."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


JsonInt = Annotated[int, BeforeValidator(_integral)]


class RunRequest(BaseModel):
    """`POST /apps/run` body; unknown keys pass (the SDKs forward whatever the caller gives)."""

    model_config = ConfigDict(extra="allow", strict=True)
    app: str
    input: Any = None
    setup: dict[str, Any] | None = None
    infra: Literal["cloud", "private", "private_first"] | None = None
    workers: list[str] | None = None
    function: str | None = None
    session: str | None = None
    session_timeout: JsonInt | None = None
    webhook: str | None = None
    metadata: dict[str, Any] | None = None
    stream: bool | None = None
    wait: bool | None = None


# Fields the SDKs type but this server does not serve (no sessions, no webhooks, no scheduled
# runs): a value is refused with 422 rather than accepted and silently ignored.
UNSERVED_FIELDS = ("session", "session_timeout", "webhook", "run_at")
UNSERVED_REASON = ("not served by this server (sessions, webhooks and scheduled runs): "
                   "leave it out or send null")


def unserved_fields(body: RunRequest) -> list[str]:
    """The unserved fields a run asks for (a non-null value); null or absent asks for nothing."""
    extra = body.model_extra or {}
    return [name for name in UNSERVED_FIELDS
            if (getattr(body, name) if name in RunRequest.model_fields else extra.get(name)) is not None]


class FileCreate(BaseModel):
    """One file of `POST /files`."""

    model_config = ConfigDict(extra="allow", strict=True)
    uri: str = ""  # both SDKs send "" (the contract: a string, never null)
    filename: str | None = None
    content_type: str | None = None
    path: str | None = None
    size: JsonInt | None = None
    public: bool | None = None


class FilesRequest(BaseModel):
    """`POST /files` body."""

    model_config = ConfigDict(extra="allow", strict=True)
    files: list[FileCreate]


def parse_body(body: bytes, model: type[Model]) -> Model:
    """The body as `model`: 400 if it is empty or not JSON, 422 naming each invalid field."""
    if not body.strip():
        raise ApiError(400, "bad_request", "request body must be a JSON object")
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        if any(err["type"] == "json_invalid" for err in exc.errors()):
            raise ApiError(400, "bad_request", "request body is not valid JSON") from exc
        raise invalid(validation_errors(exc, "body")) from exc


def validated(validate: Callable[[Any], BaseModel], value: Any, name: str) -> BaseModel:
    """`validate(value)`, its errors as a 422 naming fields under `name` (an app's input or setup)."""
    try:
        return validate(value)
    except ValidationError as exc:
        raise invalid(validation_errors(exc, name)) from exc
