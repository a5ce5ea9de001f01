"""The one curl builder: flags shape the command; nothing is patched into it afterwards."""

from __future__ import annotations

import json
import shlex

from harness.net.repro import SECOND_KEY_VAR, curl


def test_a_keyed_get_names_the_key_variable_never_a_value() -> None:
    assert curl("GET", "http://t/tasks/1") == \
        'curl -sS -i http://t/tasks/1 -H "Authorization: Bearer $INFERENCE_API_KEY"'
    assert "$SECOND_API_KEY" in curl("GET", "http://t/tasks/1", key_var=SECOND_KEY_VAR)


def test_flags_for_streams_bodies_and_write_out() -> None:
    assert curl("GET", "http://t/s", stream=True).startswith("curl -sS -N -i ")
    post = curl("POST", "http://t/apps/run", {"app": "a b"})
    assert shlex.split(post)[-1] == '{"app":"a b"}' and "-X POST" in post
    reset = curl("GET", "http://t/x", write_out="%header{x-ratelimit-reset}")
    assert " -i" not in reset and "-o /dev/null -w '%header{x-ratelimit-reset}'" in reset


def test_a_made_up_bearer_and_no_auth() -> None:
    assert "'Authorization: Bearer inf_fake'" in curl("GET", "http://t/w", bearer="inf_fake")
    assert "Authorization" not in curl("GET", "http://t/w", auth=False)


def test_target_supplied_text_is_quoted_as_one_word() -> None:
    """A URI the target chose cannot become a second command when the repro is pasted."""
    uri = "http://x/;touch${IFS}/tmp/PWNED;#"
    words = shlex.split(curl("GET", uri, auth=False, show_headers=False))
    assert words == ["curl", "-sS", uri]
    raw = shlex.split(curl("POST", "http://t/f", raw_body="$(reboot)"))
    assert raw[-2:] == ["--data-binary", "$(reboot)"]


def test_hostile_values_stay_one_argument_each() -> None:
    """Every value a target can choose becomes exactly one argv entry when the repro is pasted."""
    nasty = ["a;b", "$(id)", "`id`", "a\nrm -rf ~", "it's", 'say "hi"', "${IFS}x", "a\\b", "-X DELETE"]
    for value in nasty:
        url = "http://t/tasks/" + value
        words = shlex.split(curl("GET", url, headers={"X-Value": value}))
        assert url in words and f"X-Value: {value}" in words, value
        body = shlex.split(curl("POST", "http://t/apps/run", {"input": value}))
        assert body[-1] == json.dumps({"input": value}, separators=(",", ":")), value
