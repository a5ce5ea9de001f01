"""Shell lines that show a rate-limit finding again (the key stays $INFERENCE_API_KEY)."""

from __future__ import annotations

import json
import shlex

from harness.findings import Finding
from harness.net.repro import KEY_VAR, SECOND_KEY_VAR, curl
from harness.suites.ratelimit.session import Session


def _burst_cmd(session: Session, group: str, count: int) -> str:
    """`count` requests of a group over 4 parallel connections, one line of headers per answer."""
    method, path, body = session.request_of(group)
    names = session.names
    url = f"{session.target.base_url}{path}{'&' if '?' in path else '?'}rl=[1-{count}]"
    fmt = (f"%{{http_code}} limit=%header{{{names.limit}}} remaining=%header{{{names.remaining}}} "
           f"reset=%header{{{names.reset}}} retry-after=%header{{{names.retry_after}}}\\n")
    parts = ["curl", "-sS", "-Z", "--parallel-max", "4", "-o", "/dev/null", "-w", shlex.quote(fmt)]
    if method != "GET":
        parts += ["-X", method, "-H", shlex.quote("Content-Type: application/json")]
        if body is not None:
            parts += ["-d", shlex.quote(body.decode())]
    parts += ["-H", f'"Authorization: Bearer ${KEY_VAR}"', shlex.quote(url)]
    return " ".join(parts)


def _one_cmd(session: Session, group: str, key_var: str = KEY_VAR, write_out: str | None = None) -> str:
    method, path, body = session.request_of(group, "key1" if key_var == KEY_VAR else "key2")
    return curl(method, session.target.base_url + path, json.loads(body) if body else None,
                key_var=key_var, write_out=write_out)


def _wait_cmd(window: float) -> str:
    """Sleep until just after the next epoch-aligned window boundary (the contract's alignment)."""
    return f"python3 -c 'import time; W = {window:g}; time.sleep(W - time.time() % W + 0.02)'"


def repro_of(session: Session, finding: Finding) -> str | None:
    """A shell line that shows the broken promise (the key stays $INFERENCE_API_KEY)."""
    group = finding.evidence.get("group")
    wait = _wait_cmd(session.window)
    if group not in session.groups:
        probe = "get" if "get" in session.groups else session.groups[-1]
        one = _one_cmd(session, probe, write_out=f"%header{{{session.names.reset}}}\\n")
        return f"{one}; sleep {session.window:g}; {one}"
    assert isinstance(group, str)
    limit = session.limits[group]
    check = finding.check
    if check == "RL-429-SIDE-EFFECT":
        what = "/tasks?limit=1000" if group == "run" else "/files"
        count = (curl("GET", session.target.base_url + what, show_headers=False) +
                 " | python3 -c 'import json, sys; print(len(json.load(sys.stdin)[\"data\"]))'")
        return (f"{count}; {wait} && {_burst_cmd(session, group, limit + 3)} | sort | uniq -c; {count}"
                "  # the second count minus the first must equal the 2xx lines")
    if check == "RL-KEY-ISOLATION":
        return (f"{wait} && {_burst_cmd(session, group, limit + 1)} > /dev/null && "
                f"{_one_cmd(session, group, SECOND_KEY_VAR)}")
    if check == "RL-GROUP-ISOLATION":
        witness = finding.evidence.get("witness") or []
        leader = witness[1]["group"] if len(witness) > 1 else next(g for g in session.groups if g != group)
        return (f"{wait} && {_burst_cmd(session, leader, session.limits[leader] + 1)} > /dev/null && "
                f"{_one_cmd(session, group)}")
    if check == "RL-AFTER-RESET":
        reset = _one_cmd(session, group, write_out=f"%header{{{session.names.reset}}}")
        return (f"{wait} && {_burst_cmd(session, group, limit)} > /dev/null && reset=$({reset}) && "
                f"sleep $(( reset - $(date +%s) )).05 && {_one_cmd(session, group)}")
    if check in ("RL-RETRY-AFTER", "RL-429-PROBLEM", "RL-REMAINING-429"):
        return f"{wait} && {_burst_cmd(session, group, limit)} > /dev/null && {_one_cmd(session, group)}"
    return f"{wait} && {_burst_cmd(session, group, limit + 2)} | sort | uniq -c | sort -rn"
