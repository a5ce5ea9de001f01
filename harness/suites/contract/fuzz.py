"""schemathesis over every operation of contracts/openapi.yaml, as a library (no pytest, no CLI).

Phases, each bounded by the suite's time budget:
- coverage: schemathesis' deterministic cases (the contract's examples, boundary values,
  missing and malformed parts, undocumented methods), positive and negative;
- fuzzing: Hypothesis-generated cases per operation, positive and negative (`max_examples`);
- stateful: scenarios that follow the contract's OpenAPI links (run -> get/status/stream/cancel/delete).

Every request goes through a requests.Session that asks Traffic for its slot (pacing per
rate-limit group, task budget, deadline), reads the whole body within a deadline (streams are
cut at `stream_cap_s`), and has the project rules judge the answer. schemathesis' own checks
run on every answer; their failures become CT- findings.

schemathesis is set up as peers get it: contracts/schemathesis.toml (per-app input validation,
the contract's links only) and its extension `harness.peers.schemathesis_hooks` (NDJSON and SSE
deserializers, the stream check). The hooks' per-response checks are left out here: Traffic
already judges every answer with the same rules.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import threading
import time
import tomllib
import zlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
import schemathesis
from hypothesis import HealthCheck, Phase, Verbosity, given
from hypothesis.errors import FailedHealthCheck, Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.core.result import Ok
from schemathesis.core.transport import STREAM_CUT_SHORT_ATTRIBUTE
from schemathesis.generation.hypothesis.reporting import ignore_hypothesis_output
from schemathesis.generation.stateful import run_state_machine_as_test
from schemathesis.specs.openapi.checks import ignored_auth

from harness.checks.issues import Issue
from harness.checks.responses import Exchange
from harness.contract import Lifecycle, Limits, contracts_dir
from harness.net.bounded import READ_CAP
from harness.net.tls import policy
from harness.peers import schemathesis_hooks
from harness.suites.contract.traffic import (
    BILLABLE,
    StopRun,
    TaskBudgetSpent,
    Traffic,
    auth_label,
    exchange_evidence,
    repro_of,
    stamp,
)

# Imported as a module object: requests ships no type information, and types-requests is optional.
requests: Any = importlib.import_module("requests")
_URLLIB3_ERRORS: tuple[type[Exception], ...] = (importlib.import_module("urllib3.exceptions").HTTPError,)
STREAM_TYPES = ("application/x-ndjson", "text/event-stream")

# schemathesis failure class -> CT check id.
FAILURE_IDS = {
    "ServerError": "CT-SERVER-ERROR",
    "ContentTypeServerError": "CT-SERVER-ERROR",
    "UndefinedStatusCode": "CT-STATUS-CODE",
    "MissingContentType": "CT-CONTENT-TYPE",
    "MalformedMediaType": "CT-CONTENT-TYPE",
    "UndefinedContentType": "CT-CONTENT-TYPE",
    "MissingHeaders": "CT-RESPONSE-HEADERS",
    "JsonSchemaError": "CT-RESPONSE-SCHEMA",
    "MalformedJson": "CT-RESPONSE-SCHEMA",
    "ContentDeserializationError": "CT-RESPONSE-SCHEMA",
    "DiscriminatorMismatch": "CT-RESPONSE-SCHEMA",
    "RejectedPositiveData": "CT-POSITIVE-REJECTED",
    "AcceptedNegativeData": "CT-NEGATIVE-ACCEPTED",
    # The contract declares no required header but the key, so this can only mean negative data.
    "MissingHeaderNotRejected": "CT-NEGATIVE-ACCEPTED",
    "IgnoredAuth": "CT-IGNORED-AUTH",
    "UseAfterFree": "CT-USE-AFTER-FREE",
    "EnsureResourceAvailability": "CT-RESOURCE-AVAILABILITY",
    "UnsupportedMethodResponse": "CT-UNSUPPORTED-METHOD",
    "AllowHeaderMismatch": "CT-UNSUPPORTED-METHOD",
}
# The hooks' checks Traffic already runs on every answer (the same rules, judged once).
JUDGED_BY_TRAFFIC = tuple(name for name in schemathesis_hooks.CHECK_IDS if name != "harness_stream")


@dataclass
class FuzzOptions:
    max_examples: int = 20
    stateful_examples: int = 20
    stateful_steps: int = 6
    coverage_cap: int = 60  # coverage cases per operation
    phases: tuple[str, ...] = ("coverage", "fuzzing", "stateful")
    request_timeout_s: float = 10.0
    stream_cap_s: float = 2.0
    seed: int = 0  # the same seed, schema and schemathesis version give the same cases
    # Only these operations ("POST /files"; empty: all) in the coverage and fuzzing phases, which
    # go one operation at a time; the stateful phase follows the links wherever they lead.
    operations: tuple[str, ...] = ()
    lifecycle: Lifecycle | None = None  # what the hooks' stream check judges by (None: contracts/)
    limits: Limits | None = None


@dataclass
class FuzzStats:
    cases: int = 0
    by_phase: dict[str, int] = field(default_factory=dict)
    operations: int = 0
    seconds: float = 0.0
    stopped: str | None = None
    errors: list[str] = field(default_factory=list)
    no_negative: list[str] = field(default_factory=list)  # operations given up in negative mode


# A response body past this is cut (and a finding): the harness's memory stays near it.
MAX_BODY_BYTES = READ_CAP
# Threads that send the coverage and fuzzing cases (`_Driver.send`): while they wait for
# rate-limit slots and answers, the main thread generates the next cases (generation is most
# of the suite's CPU). Generation stays on one thread: hypothesis on Python 3.11 is not safe to
# run from several (its ast use races), and the cases stay those of a sequential run.
LANES = 4
# Modules schemathesis imports on a case's first call or check, imported here on the main thread
# instead: anyio (which the ASGI transport imports) compiles its own source to an AST on import,
# and an AST built on a lane while hypothesis builds one on the main thread fails on Python 3.11
# (SystemError: AST constructor recursion depth mismatch).
_IMPORTED_ON_FIRST_USE = ("schemathesis.transport.asgi", "schemathesis.transport.wsgi", "pyrate_limiter",
                          "schemathesis.specs.openapi.object_authorization", "schemathesis.wfc.escalation")


class _PacedSession(requests.Session):  # type: ignore[misc]
    """A requests.Session whose every request goes through Traffic and is read within a deadline."""

    def __init__(self, traffic: Traffic, request_timeout_s: float, stream_cap_s: float) -> None:
        super().__init__()
        self.traffic = traffic
        self.request_timeout_s = request_timeout_s
        self.stream_cap_s = stream_cap_s

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        for attempt in range(2):
            operation = self.traffic.before(method, url)
            kwargs["stream"] = True
            kwargs["timeout"] = (5.0, self.request_timeout_s)
            # A redirect is an answer to judge against the contract, never a request the session
            # sends on its own: past the pacing and the budget, perhaps to another host.
            kwargs["allow_redirects"] = False
            sent = stamp()
            try:
                response = super().request(method, url, *args, **kwargs)
                self._read(response)
            except requests.RequestException as exc:
                # The request as sent when the error carries it (not those _read raises).
                sent_headers = exc.request.headers if exc.request is not None else {
                    **self.headers, **(kwargs.get("headers") or {})}
                auth = sent_headers.get("Authorization")
                timeout = isinstance(exc, requests.exceptions.Timeout) and not isinstance(exc, CutAnswer)
                self.traffic.record_failure(method.upper(), url, sent, type(exc).__name__, timeout,
                                            auth_label(auth, self.traffic.keys))
                raise
            wait = self.traffic.after(_exchange(response, self.traffic), operation, sent)
            if response.status_code != 429 or attempt:
                return response
            if time.monotonic() + wait >= self.traffic.stop_at:
                return response
            time.sleep(wait)
        return response  # pragma: no cover - the loop always returns

    def _read(self, response: Any) -> None:
        media = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        streaming = media in STREAM_TYPES
        limit = self.stream_cap_s if streaming else self.request_timeout_s
        end = time.monotonic() + limit
        chunks: list[bytes] = []
        received = 0
        cut = False
        try:
            # read1: whatever has arrived (one system call), so a trickle never blocks past `end`.
            while True:
                chunk = response.raw.read1(65536, decode_content=True)
                if not chunk:
                    break
                chunks.append(chunk)
                received += len(chunk)
                if time.monotonic() > end or received > MAX_BODY_BYTES:
                    cut = True
                    break
        except (requests.RequestException, OSError, *_URLLIB3_ERRORS):
            if not streaming:
                response.close()
                raise requests.exceptions.ConnectionError(
                    f"the response body broke off after {sum(map(len, chunks))} bytes") from None
            cut = True
        if cut:
            # The deserializers and the stream check read this: the last line may be unfinished,
            # and a stream cut before its end is not judged on its end.
            setattr(response, STREAM_CUT_SHORT_ATTRIBUTE, True)
            response.close()
            if not streaming and received > MAX_BODY_BYTES:
                raise requests.exceptions.ConnectionError(
                    f"the response body passed {MAX_BODY_BYTES // 2**20} MiB: not read further")
            if not streaming:
                raise CutAnswer(
                    f"the response was not complete within {limit:g} s (the target kept sending)")
        response._content = b"".join(chunks)
        response._content_consumed = True


class CutAnswer(requests.exceptions.ReadTimeout):  # type: ignore[misc]
    """An answer whose head came but whose body did not finish in time: a wrong answer."""


def _exchange(response: Any, traffic: Traffic) -> Exchange:
    request = response.request
    body = request.body
    if isinstance(body, str):
        body = body.encode("utf-8")
    headers = {k.lower(): v for k, v in request.headers.items() if k.lower() != "authorization"}
    return Exchange(
        method=str(request.method), url=str(request.url), path=traffic.relative_path(str(request.url)),
        status=int(response.status_code),
        headers={k.lower(): _header(v) for k, v in response.headers.items()},
        body=bytes(response.content or b""), received_at=time.time(),
        request_body=body if isinstance(body, bytes) else None, request_headers=headers,
        auth=auth_label(request.headers.get("Authorization"), traffic.keys))


def _header(value: Any) -> str:
    """A header value from requests (a string) or from schemathesis' Response (a list of strings)."""
    return ", ".join(str(v) for v in value) if isinstance(value, list | tuple) else str(value)


def peer_config() -> dict[str, Any]:
    """contracts/schemathesis.toml: what peers are told about the contract (one source)."""
    with (contracts_dir() / "schemathesis.toml").open("rb") as fh:
        return tomllib.load(fh)


def _config(base_url: str, key: str, options: FuzzOptions) -> Any:
    config = peer_config()
    config.pop("hooks", None)  # imported above; the module is named for the CLI
    generation = config.setdefault("generation", {})
    # Unknown query parameters are ignored by HTTP APIs, and the contract does not forbid them;
    # the key is set by the suite, and missing or wrong keys are probed by ignored_auth.
    generation.update({"allow-extra-parameters": False, "with-security-parameters": False})
    config.update({"base-url": base_url, "headers": {"Authorization": f"Bearer {key}"},
                   "request-timeout": options.request_timeout_s})
    return schemathesis.Config.from_dict(config)


class _Driver:
    """Runs the phases and turns schemathesis failures into findings."""

    def __init__(self, schema_path: Path, base_url: str, key: str, traffic: Traffic, options: FuzzOptions,
                 progress: Callable[[str], None]) -> None:
        self.base_url = base_url.rstrip("/")
        self.traffic = traffic
        self.options = options
        self.progress = progress
        self.headers = {"Authorization": f"Bearer {key}"}
        for name in _IMPORTED_ON_FIRST_USE:
            with contextlib.suppress(ImportError):  # another schemathesis version may lack it
                importlib.import_module(name)
        self._sessions = threading.local()  # one requests.Session per thread
        self._lock = threading.Lock()
        # One operation's cases always go to the same lane, so they are sent in order.
        self._lanes = [ThreadPoolExecutor(1, thread_name_prefix=f"contract-lane{i}") for i in range(LANES)]
        self._lane_of: dict[str, int] = {}
        self._sent: list[Future[Any]] = []
        schemathesis_hooks.configure(options.lifecycle, options.limits)
        self.schema = schemathesis.openapi.from_path(schema_path, config=_config(base_url, key, options))
        self.stats = FuzzStats()
        self.auth_verified: set[str] = set()
        self.budget_spent = False

    @property
    def session(self) -> _PacedSession:
        """This thread's session (requests does not promise that one Session is thread-safe)."""
        session: _PacedSession | None = getattr(self._sessions, "session", None)
        if session is None:
            session = _PacedSession(self.traffic, self.options.request_timeout_s, self.options.stream_cap_s)
            session.verify = policy().requests_verify()
            session.trust_env = False  # no proxy or netrc credentials from the environment
            self._sessions.session = session
        return session

    def cap(self, operation: Any, wanted: int) -> int:
        """At most half a window's paced budget of the operation's rate-limit group per phase, so
        that a low limit (uploads: 50 a window) bounds the run's length instead of stretching it."""
        group = self.traffic.rules.group(operation.label)
        interval = self.traffic.pacer.interval.get(group or "", 0.0)
        if interval <= 0:
            return wanted
        return min(wanted, max(5, int(self.traffic.pacer.window_s / interval / 2)))

    def transport_kwargs(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "session": self.session, "headers": dict(self.headers),
                "timeout": self.options.request_timeout_s}

    def run(self) -> FuzzStats:
        started = time.monotonic()
        operations = [result.ok() for result in self.schema.get_all_operations()
                      if isinstance(result, Ok)
                      and (not self.options.operations or result.ok().label in self.options.operations)]
        self.stats.operations = len(operations)
        try:
            with ignore_hypothesis_output():
                if "coverage" in self.options.phases:
                    self.progress(f"contract: coverage phase over {len(operations)} operations")
                    for operation in operations:
                        self._coverage(operation)
                    self._wait_for_sent()
                if "fuzzing" in self.options.phases and self.options.max_examples > 0:
                    self.progress(f"contract: fuzzing phase, {self.options.max_examples} examples per "
                                  "operation and mode")
                    for operation in operations:
                        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                            self._fuzz(operation, mode)
                    self._wait_for_sent()
                if "stateful" in self.options.phases and self.options.stateful_examples > 0:
                    self.progress(f"contract: stateful phase, {self.options.stateful_examples} scenarios "
                                  "through the links")
                    self._stateful()
        except StopRun:
            self.stats.stopped = "time budget spent"
        finally:
            for lane in self._lanes:
                lane.shutdown(wait=True)  # cases still queued past the budget stop at once
        self.stats.seconds = time.monotonic() - started
        return self.stats

    def send(self, case: Any, phase: str) -> None:
        """Send `case` (`run_case`) on its operation's lane and return at once."""
        if self.traffic.out_of_time():
            raise StopRun
        lane = self._lane_of.setdefault(case.operation.label, len(self._lane_of) % LANES)
        self._sent.append(self._lanes[lane].submit(self._run_sent, case, phase))

    def _run_sent(self, case: Any, phase: str) -> None:
        try:
            self.run_case(case, phase)
        except StopRun:
            raise
        except Exception as exc:  # noted, as the phase did when it sent its cases itself
            self._note_error(f"{phase} {case.operation.label}: {type(exc).__name__}: {str(exc)[:200]}")

    def _wait_for_sent(self) -> None:
        """Wait until every case sent so far has been judged; raise the first StopRun (or bug)."""
        sent, self._sent = self._sent, []
        errors = [error for future in sent if (error := future.exception()) is not None]
        if errors:
            raise errors[0]

    # -- one case ------------------------------------------------------------------------

    def run_case(self, case: Any, phase: str) -> Any:
        """Send one case and judge it; returns the response, or None when nothing came back."""
        if self.traffic.out_of_time():
            raise StopRun
        if self.budget_spent and case.operation.label in BILLABLE:
            return None
        self._count(phase)
        try:
            response = case.call(**self.transport_kwargs())
        except TaskBudgetSpent:
            self.budget_spent = True
            return None
        except StopRun:
            raise
        except requests.RequestException as exc:
            self._transport_issue(case, exc)
            return None
        except Exception as exc:  # a case the target made schemathesis choke on: note, go on
            self._note_error(f"{case.operation.label}: {type(exc).__name__}: {str(exc)[:200]}")
            return None
        self.validate(case, response)
        return response

    def validate(self, case: Any, response: Any) -> None:
        if response.status_code == 429:
            return  # reported as CT-RATE-LIMITED by Traffic, not a contract failure
        label = case.operation.label
        try:
            case.validate_response(response, headers=dict(self.headers), excluded_checks=EXCLUDED,
                                   transport_kwargs=self.transport_kwargs())
        except FailureGroup as group:
            for failure in group.exceptions:
                self._failure(failure, case, response)
        except (TaskBudgetSpent, StopRun):
            raise
        except requests.RequestException as exc:  # a check's own probe request broke
            self._transport_issue(case, exc)
        except Exception as exc:
            self._note_error(f"{label}: checks raised {type(exc).__name__}: {str(exc)[:200]}")
        if 200 <= response.status_code < 300 and self.traffic.rules.group(label) is not None:
            with self._lock:
                first = label not in self.auth_verified
                self.auth_verified.add(label)
            if first:
                self._probe_auth(label, response.request)

    def _probe_auth(self, label: str, request: Any) -> None:
        """ignored_auth: the accepted request once without a key and once with a wrong one."""
        headers = {k: v for k, v in request.headers.items() if k.lower() != "authorization"}
        for scenario, extra in (("without a key", {}),
                                ("with an unknown key", {"Authorization": "Bearer inf_not_a_real_key"})):
            try:
                answer = self.session.request(request.method, request.url, data=request.body,
                                              headers={**headers, **extra})
            except (StopRun, TaskBudgetSpent):
                raise
            except requests.RequestException as exc:
                self.traffic.collector.add(Issue("CT-TRANSPORT", f"no complete answer to a request "
                                                 f"{scenario}: {type(exc).__name__}", key="auth-probe"),
                                           label, {"request": f"{request.method} {request.url}"})
                continue
            if 200 <= answer.status_code < 300:
                ex = _exchange(answer, self.traffic)
                self.traffic.collector.add(Issue(
                    "CT-IGNORED-AUTH", f"a request {scenario} was accepted ({answer.status_code}) instead of "
                    "401: the operation does not enforce the key it declares", key=scenario), label,
                    exchange_evidence(ex), repro_of(ex))

    def _failure(self, failure: Failure, case: Any, response: Any) -> None:
        check = getattr(failure, "check", None) or FAILURE_IDS.get(type(failure).__name__,
                                                                   "CT-RESPONSE-SCHEMA")
        if type(failure).__name__ == "JsonSchemaError" and "header" in (failure.title or "").lower():
            check = "CT-RESPONSE-HEADERS"
        ex = _exchange(response, self.traffic)
        message = f"{failure.title} ({failure.code}): {(failure.message or '').strip()[:1200]}"
        key = f"{type(failure).__name__}:{failure.title}:{getattr(failure, '_unique_key', '')}"
        evidence = {**exchange_evidence(ex), "schemathesis_check": failure.code,
                    "phase": _phase_of(case)}
        self.traffic.collector.add(Issue(check, message, key=key), case.operation.label, evidence,
                                   repro_of(ex))

    def _transport_issue(self, case: Any, exc: Exception) -> None:
        text = str(exc)
        for key in self.traffic.keys:
            text = text.replace(key, "$INFERENCE_API_KEY")
        kind = type(exc).__name__
        request = f"{case.method.upper()} {self.base_url}{case.formatted_path}"
        if isinstance(exc, requests.exceptions.Timeout) and not isinstance(exc, CutAnswer):
            # No answer came at all: indeterminate (counted), not a wrong answer.
            self.traffic.unanswered(case.operation.label, request, kind)
            return
        self.traffic.collector.add(Issue("CT-TRANSPORT", f"no complete answer: {kind}: {text[:300]}",
                                         key=kind), case.operation.label,
                                   {"request": request, "error": f"{kind}: {text[:500]}"})

    def _count(self, phase: str) -> None:
        with self._lock:
            self.stats.cases += 1
            self.stats.by_phase[phase] = self.stats.by_phase.get(phase, 0) + 1

    def _note_error(self, text: str) -> None:
        with self._lock:
            if len(self.stats.errors) < 10:
                self.stats.errors.append(text)

    # -- phases --------------------------------------------------------------------------

    def _coverage(self, operation: Any) -> None:
        config = self.schema.config.generation_for(operation=operation, phase="coverage")
        try:
            cases = self.schema.iter_coverage_cases(
                operation, generation_modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                generation_config=config)
            for case in itertools.islice(cases, self.cap(operation, self.options.coverage_cap)):
                self.send(case, "coverage")
        except StopRun:
            raise
        except Exception as exc:
            self._note_error(f"coverage {operation.label}: {type(exc).__name__}: {str(exc)[:200]}")

    def seed_for(self, name: str) -> int:
        """One seed per operation and mode, from the run's seed (stable across processes)."""
        return (self.options.seed ^ zlib.crc32(name.encode())) & 0xFFFFFFFF

    def _settings(self, examples: int, **extra: Any) -> hypothesis.settings:
        extra.setdefault("suppress_health_check", list(HealthCheck))
        return hypothesis.settings(max_examples=examples, deadline=None, database=None,
                                   phases=[Phase.generate], verbosity=Verbosity.quiet, **extra)

    def _fuzz(self, operation: Any, mode: GenerationMode) -> None:
        phase = f"fuzzing-{mode.value}"
        stop: list[StopRun] = []
        sent = [0]

        def attempt(examples: int, quick_give_up: bool, salt: str = "") -> None:
            # Hypothesis draws up to ~10 invalid inputs per wanted example before it gives up; an
            # operation with nothing negatable (a bare string path parameter) burns ~1 s that way.
            # Its filter_too_much health check (50 filtered before 10 valid) says so much sooner.
            suppressed = [c for c in HealthCheck if not (quick_give_up and c is HealthCheck.filter_too_much)]

            @hypothesis.seed(self.seed_for(f"{operation.label} {mode.value}{salt}"))
            @given(case=operation.as_strategy(generation_mode=mode))
            @self._settings(examples, suppress_health_check=suppressed)
            def test(case: Any) -> None:
                if stop:
                    return
                sent[0] += 1
                try:
                    self.send(case, phase)
                except StopRun as exc:
                    stop.append(exc)

            test()

        wanted = self.cap(operation, self.options.max_examples)
        try:
            try:
                attempt(wanted, quick_give_up=mode is GenerationMode.NEGATIVE)
            except FailedHealthCheck:
                if sent[0] == 0:
                    with self._lock:
                        self.stats.no_negative.append(operation.label)
                    return  # nothing of this mode can be generated
                attempt(wanted - sent[0], quick_give_up=False, salt=" again")
        except Unsatisfiable:
            pass  # nothing of this mode can be generated (e.g. no negative path parameter)
        except Exception as exc:
            self._note_error(f"{phase} {operation.label}: {type(exc).__name__}: {str(exc)[:200]}")
        if stop:
            raise stop[0]

    def _stateful(self) -> None:
        driver = self

        class _Stop(Exception):
            pass

        class Machine(self.schema.as_state_machine()):  # type: ignore[misc]
            def get_call_kwargs(self, case: Any) -> dict[str, Any]:
                return driver.transport_kwargs()

            def call(self, case: Any, **kwargs: Any) -> Any:
                if driver.traffic.out_of_time():
                    raise _Stop
                driver._count("stateful")
                try:
                    return case.call(**kwargs)
                except (StopRun, TaskBudgetSpent):
                    raise _Stop from None
                except requests.RequestException as exc:
                    driver._transport_issue(case, exc)
                    raise _Stop from None

            def validate_response(self, response: Any, case: Any, additional_checks: Any = None,
                                  **kwargs: Any) -> None:
                if response.status_code == 429:
                    return
                try:
                    case.validate_response(response, headers=dict(driver.headers),
                                           transport_kwargs=driver.transport_kwargs(),
                                           excluded_checks=EXCLUDED, recorder=self.recorder)
                except FailureGroup as group:
                    for failure in group.exceptions:
                        driver._failure(failure, case, response)
                except (StopRun, TaskBudgetSpent):
                    raise _Stop from None
                except requests.RequestException as exc:
                    driver._transport_issue(case, exc)
                except Exception as exc:
                    driver._note_error(f"stateful {case.operation.label}: {type(exc).__name__}: "
                                       f"{str(exc)[:200]}")

        hypothesis.seed(self.seed_for("stateful"))(Machine)
        try:
            run_state_machine_as_test(Machine, settings=self._settings(
                self.options.stateful_examples, stateful_step_count=self.options.stateful_steps))
        except _Stop:
            if self.traffic.out_of_time():
                raise StopRun from None
        except Exception as exc:
            if self.traffic.out_of_time():
                raise StopRun from None
            if "_Stop" not in repr(exc):
                self._note_error(f"stateful: {type(exc).__name__}: {str(exc)[:200]}")


# schemathesis' ignored_auth re-sends outside any session we control (no pacing, no read deadline):
# the same probe is made by _probe_auth instead, through the paced session.
EXCLUDED = [ignored_auth, *(getattr(schemathesis_hooks, name) for name in JUDGED_BY_TRAFFIC)]


def _phase_of(case: Any) -> str | None:
    meta = getattr(case, "meta", None)
    phase = getattr(getattr(meta, "phase", None), "name", None)
    return str(getattr(phase, "value", phase)) if phase is not None else None


def run_schemathesis(schema_path: Path, base_url: str, key: str, traffic: Traffic, options: FuzzOptions,
                     progress: Callable[[str], None]) -> FuzzStats:
    """Run the schemathesis phases against `base_url`; findings go to `traffic.collector`."""
    return _Driver(schema_path, base_url, key, traffic, options, progress).run()
