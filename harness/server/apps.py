"""The app catalog: refs, input and setup schemas, durations and results of each simulated app."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.server.png import parse_color, solid_png

_REF = re.compile(
    r"^(?P<name>[a-z0-9][a-z0-9_.-]*/[a-z0-9][a-z0-9_.-]*)(?:@(?P<version>[A-Za-z0-9_.-]+))?"
    r"(?::(?P<function>[A-Za-z_][A-Za-z0-9_]*))?$"
)


class AppFailure(Exception):
    """The app ran and failed; the message becomes the task's `error`."""


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EchoInput(_Input):
    message: str = Field(max_length=100_000)


class SleepInput(_Input):
    seconds: float = Field(ge=0, le=3600)


class FailInput(_Input):
    message: str = "intentional failure"


class ImageInput(_Input):
    width: int = Field(default=8, ge=1, le=256)
    height: int = Field(default=8, ge=1, le=256)
    color: str = Field(default="#3366cc", pattern=r"^#[0-9a-fA-F]{6}$")
    image: str | None = Field(default=None, description="URI of an uploaded file to pass through")


class FluxSetup(_Input):
    model: Literal["schnell", "dev"] = "schnell"


class FluxInput(_Input):
    prompt: str = Field(min_length=1, max_length=10_000)


class AnySetup(BaseModel):
    model_config = ConfigDict(extra="allow")


@dataclass(frozen=True)
class OutputFile:
    """A file an app wants stored and referenced from its output."""

    data: bytes
    content_type: str
    filename: str


@dataclass(frozen=True)
class Step:
    """One stretch of the Running phase: a duration in seconds (before scaling) and its log line."""

    seconds: float
    log: str


# The result builder receives the validated input, the setup, the bytes of referenced input
# files (by URI) and returns the output, where OutputFile values are replaced by file objects.
ResultBuilder = Callable[[Any, Any, dict[str, bytes]], dict[str, Any]]


@dataclass(frozen=True)
class App:
    """One entry of the catalog."""

    name: str
    description: str
    input_model: type[BaseModel]
    setup_model: type[BaseModel]
    steps: Callable[[Any, Any], list[Step]]
    result: ResultBuilder
    uploads: bool = False
    kind: Literal["app", "flow"] = "app"
    file_fields: tuple[str, ...] = field(default=())

    def validate_input(self, value: Any) -> BaseModel:
        return self.input_model.model_validate(value if value is not None else {}, strict=True)

    def validate_setup(self, value: Any) -> BaseModel:
        return self.setup_model.model_validate(value if value is not None else {}, strict=True)


def _image_result(inp: Any, _setup: Any, files: dict[str, bytes]) -> dict[str, Any]:
    if inp.image is not None:
        data = files[inp.image]
        return {"image": OutputFile(data, "application/octet-stream", "image-out.bin")}
    png = solid_png(inp.width, inp.height, parse_color(inp.color))
    return {"image": OutputFile(png, "image/png", "image.png"), "width": inp.width,
            "height": inp.height}


def _image_steps(inp: Any, _setup: Any) -> list[Step]:
    return [Step(0.5, f"rendering {inp.width}x{inp.height} image")]


def _sleep_steps(inp: Any, _setup: Any) -> list[Step]:
    total = float(inp.seconds)
    steps: list[Step] = []
    done = 0.0
    # Chunks of at most 5 s keep logs (and so stream updates) growing during long tasks.
    while done < total or not steps:
        chunk = min(5.0, total - done)
        done += chunk
        steps.append(Step(chunk, f"slept {done:g}/{total:g} s"))
    return steps


def _fail_result(inp: Any, _setup: Any, _files: dict[str, bytes]) -> dict[str, Any]:
    raise AppFailure(inp.message)


def _flux_steps(_inp: Any, setup: Any) -> list[Step]:
    seconds = 1.0 if setup.model == "schnell" else 2.5
    return [Step(seconds, f"generating with flux-{setup.model}")]


def _flux_result(inp: Any, setup: Any, _files: dict[str, bytes]) -> dict[str, Any]:
    shade = sum(inp.prompt.encode()) % 256
    png = solid_png(16, 16, (shade, 255 - shade, 128))
    return {"image": OutputFile(png, "image/png", "flux.png"), "model": setup.model,
            "prompt": inp.prompt}


def _flow_steps(inp: Any, _setup: Any) -> list[Step]:
    return [
        Step(0.2, f"step 1/2 infsh/echo: {inp.message[:80]}"),
        Step(0.5, "step 2/2 infsh/image: rendering 8x8 image"),
    ]


def _flow_result(inp: Any, _setup: Any, _files: dict[str, bytes]) -> dict[str, Any]:
    png = solid_png(8, 8, (51, 102, 204))
    return {"message": inp.message, "image": OutputFile(png, "image/png", "image.png")}


CATALOG: dict[str, App] = {
    app.name: app
    for app in (
        App("infsh/echo", "Returns its message.", EchoInput, AnySetup,
            lambda inp, _s: [Step(0.2, "echoing")],
            lambda inp, _s, _f: {"message": inp.message}),
        App("infsh/sleep", "Sleeps for `seconds` (scaled by --speed).", SleepInput, AnySetup,
            _sleep_steps, lambda inp, _s, _f: {"slept": inp.seconds}),
        App("infsh/fail", "Always fails with `message` as its error.", FailInput, AnySetup,
            lambda inp, _s: [Step(0.3, "about to fail")], _fail_result),
        App("infsh/image", "Writes a small PNG, or passes an uploaded file through.", ImageInput,
            AnySetup, _image_steps, _image_result, uploads=True, file_fields=("image",)),
        App("infsh/flux", "Text to image; setup {model: schnell|dev}.", FluxInput, FluxSetup,
            _flux_steps, _flux_result, uploads=True),
        App("infsh/echo-image-flow", "Flow: echo, then image.", EchoInput, AnySetup,
            _flow_steps, _flow_result, uploads=True, kind="flow"),
    )
}


def renamed_catalog(names: dict[str, str]) -> dict[str, App]:
    """The catalog with each `new -> built-in` rename applied; a renamed app loses its old name."""
    unknown = sorted(set(names.values()) - set(CATALOG))
    if unknown:
        raise ValueError(f"no built-in app {unknown[0]!r} to rename (apps: {', '.join(CATALOG)})")
    catalog = {name: app for name, app in CATALOG.items() if name not in names.values()}
    for new, old in names.items():
        catalog[new] = dataclasses.replace(CATALOG[old], name=new)
    return catalog


@dataclass(frozen=True)
class AppRef:
    """A parsed `namespace/name[@version][:function]` reference."""

    name: str
    version: str | None
    function: str | None


def parse_ref(ref: str) -> AppRef | None:
    """Parse an app reference, or return None when it is malformed."""
    match = _REF.match(ref)
    if match is None:
        return None
    return AppRef(match["name"], match["version"], match["function"])


def validation_errors(exc: ValidationError, prefix: str) -> list[dict[str, str]]:
    """Turn pydantic errors into RFC 9457 `invalid_params` entries."""
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        out.append({"name": f"{prefix}.{loc}" if loc else prefix, "reason": err["msg"]})
    return out
