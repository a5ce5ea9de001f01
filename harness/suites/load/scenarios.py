"""The load scenarios by name (no Locust import: the harness process reads this too)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["flow", "at_limit", "over_limit"]


@dataclass(frozen=True)
class Scenario:
    name: str
    users: tuple[str, ...]  # names of classes in harness.suites.load.users (weights on the classes)
    kind: Kind
    description: str


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("run_wait", ("RunWaitUser",), "flow",
             "run a task, then read its NDJSON stream to the terminal update"),
    Scenario("fire_and_forget_poll", ("PollUser",), "flow",
             "run, then poll /status (full GET on each change) to a terminal status"),
    Scenario("stream_sse", ("SseUser",), "flow", "run, then read the SSE stream to the end"),
    Scenario("upload", ("UploadUser",), "flow",
             "POST /files + PUT + run with the file + download and compare the bytes"),
    Scenario("mixed", ("RunWaitUser", "PollUser", "SseUser", "UploadUser"), "flow",
             "run_wait 4 : poll 3 : sse 2 : upload 1"),
    Scenario("contract_mix", ("ContractMixUser",), "flow",
             "the contract's own generated requests replayed at load; a sample of the answers "
             "judged against the contract (LD-CONTRACT-UNDER-LOAD)"),
    Scenario("agent_chat", ("AgentChatUser",), "flow",
             "two turns in one agent chat: a client calculator round trip (42 * 17, the answer "
             "holds 714), then a second message; each chat stream read as it arrives, the chat "
             "judged after it"),
    Scenario("at_limit", ("AtLimitUser",), "at_limit",
             "every key sends exactly its documented budget per window (run, get, upload): no 429"),
    Scenario("over_limit", ("OverLimitUser",), "over_limit",
             "every key sends twice its budget per window: the excess is a clean 429, nothing else"),
)}
ALIASES = {"poll": "fire_and_forget_poll", "sse": "stream_sse", "run+wait": "run_wait"}


def resolve(name: str) -> Scenario:
    scenario = SCENARIOS.get(ALIASES.get(name, name))
    if scenario is None:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
    return scenario


def phase_order(names: list[str]) -> list[Scenario]:
    """Scenarios in run order: flows first, at_limit, then over_limit (it spends the windows)."""
    chosen = list(dict.fromkeys(resolve(n).name for n in names))
    rank = {"flow": 0, "at_limit": 1, "over_limit": 2}
    return sorted((SCENARIOS[n] for n in chosen), key=lambda s: rank[s.kind])
