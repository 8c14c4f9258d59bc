"""The store's secret checks are pakati_core.redaction's, and they catch everything the store's own patterns caught."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from pakati_core.redaction import is_secret_name, looks_secret
from pakati_core.store.from_prompt import looks_secret as from_prompt_looks_secret

# The patterns the store held before it used pakati_core.redaction (kept here as the reference).
OLD_CALLS_KEY = re.compile(r"(api[_-]?key|secret|token|password|authori[sz]ation|credential|cookie)", re.IGNORECASE)
OLD_CALLS_VALUE = re.compile(r"^(sk-|sk_|Bearer\s|xai-|AIza)", re.IGNORECASE)
OLD_PROMPT_VALUE = re.compile(r"(^|\s)(sk-|sk_|Bearer\s|xai-|AIza)[A-Za-z0-9_\-]{8,}", re.I)

PREFIXES = st.sampled_from(["sk-", "sk_", "SK-", "Bearer ", "bearer\t", "xai-", "AIza", "aiza"])
TAILS = st.text(alphabet="abcXYZ019_-*. !", max_size=24)
LEADS = st.text(alphabet="ab .,:\n", max_size=8)


def test_from_prompt_uses_the_shared_check():
    assert from_prompt_looks_secret is looks_secret


@settings(max_examples=300, deadline=None)
@given(LEADS, PREFIXES, TAILS)
def test_every_value_the_old_patterns_caught_is_still_caught(lead, prefix, tail):
    for text in (prefix + tail, lead + prefix + tail):
        if OLD_CALLS_VALUE.match(text) or OLD_PROMPT_VALUE.search(text):
            assert looks_secret(text), text


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
def test_every_name_the_old_pattern_caught_is_still_caught(name):
    assert is_secret_name(name) == bool(OLD_CALLS_KEY.search(name))


def test_short_prefixed_values_and_plain_text():
    for s in ("sk-", "sk-ab", "Bearer ", "AIza", "xai-1", "a prompt with sk-abcdefgh1234 inside", "Bearer abcdefghijk123"):
        assert looks_secret(s), s
    for s in ("a sky", "ask-me", "risk-free fields", "", None, 3):
        assert not looks_secret(s), s
