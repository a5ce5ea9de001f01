"""The observation record: one encoder, and the rate-limit facts every suite records the same way."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.history import HISTORY_FILE, HistoryWriter, Observation, rate_limit_facts, worker_history_file
from harness.history.store import WORKER_HISTORY


def test_the_encoder_drops_empty_fields_and_round_trips() -> None:
    obs = Observation("task_1", "o1", "get", 10, 20, 1.5, http=200, status=7, extra={"rl_remaining": 3})
    line = obs.to_json()
    assert '"recv_ns":20' in line and "null" not in line and "output" not in line


    assert Observation.from_dict(json.loads(line)) == obs
    timed_out = Observation(None, "o1", "run", 10, None, 1.5, outcome="timeout")
    assert Observation.from_dict(json.loads(timed_out.to_json())) == timed_out


def test_rate_limit_facts_are_integers_or_capped_raw_text() -> None:
    headers = {"x-ratelimit-remaining": "²", "x-ratelimit-limit": "100", "x-ratelimit-reset": "9" * 60,
               "retry-after": " 2 "}
    facts = rate_limit_facts(headers.get, "get")
    assert facts["rl_group"] == "get" and facts["rl_limit"] == 100 and facts["retry_after"] == 2
    assert facts["rl_remaining_raw"] == "²" and "rl_remaining" not in facts
    assert facts["rl_reset_raw"] == "9" * 40 and "rl_reset" not in facts  # 60 digits: no epoch second
    assert rate_limit_facts({}.get, "run") == {"rl_group": "run"}
    long = rate_limit_facts({"retry-after": "x" * 500}.get, "run")
    assert long["retry_after_raw"] == "x" * 40


def test_history_file_names() -> None:
    assert HISTORY_FILE == "observations.jsonl"
    match = WORKER_HISTORY.match(worker_history_file(12))
    assert match is not None and match.group(1) == "12"


def test_an_empty_object_status_is_kept_only_extra_may_be_dropped() -> None:
    odd = Observation("t", "o", "get", 1, 2, 1.0, status={})
    assert '"status":{}' in odd.to_json()
    assert Observation.from_dict(json.loads(odd.to_json())) == odd


def test_a_finished_history_is_compressed_and_read_back(tmp_path: Path) -> None:
    from harness.history import (
        COMPRESSED_HISTORY_FILE,
        HistoryError,
        compress_history,
        history_in,
        read_history,
    )


    assert compress_history(tmp_path) is None and history_in(tmp_path) == tmp_path / HISTORY_FILE
    with HistoryWriter(tmp_path / HISTORY_FILE) as writer:
        for i in range(500):
            writer.append(Observation(f"t{i}", "o", "get", i, i + 1, 0.0, http=200, status=9))
    plain_size = (tmp_path / HISTORY_FILE).stat().st_size
    packed = compress_history(tmp_path)
    assert packed == tmp_path / COMPRESSED_HISTORY_FILE and not (tmp_path / HISTORY_FILE).exists()
    assert packed.stat().st_size * 5 < plain_size and history_in(tmp_path) == packed
    assert [o.task for o in read_history(packed)] == [f"t{i}" for i in range(500)]
    packed.write_bytes(packed.read_bytes()[:-40])  # a damaged file is a HistoryError, not a crash
    with pytest.raises(HistoryError, match="damaged"):
        list(read_history(packed))
