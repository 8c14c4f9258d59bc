"""The store's content-hash cache in front of the providers: LLM plans and vision-judge answers.

Over the real SDK clients, against the mocked transport (``Wire``) and the local fake provider
endpoint (``fake_openai``): an identical second request is answered from the database with no
request sent, anything different asks again, another user's cache is not this user's, a broken
database costs only the cache, and no key ever reaches the database (the file is scanned for it).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from model_fakes import anthropic_body, chat_body  # noqa: E402
from pakati_core.models import CachedJudge, make_judge  # noqa: E402
from pakati_core.models.judging import JUDGE_CACHE_NAMESPACE  # noqa: E402
from pakati_core.orchestration import (  # noqa: E402
    check_alignment,
    llm,  # noqa: E402
    plan,
)
from pakati_core.store import Store, open_store  # noqa: E402
from provider_wire import GOAL, SENTINEL, Wire, answer, isolate_provider_env, opts, photo  # noqa: E402

ANSWERS = {
    "answers": [
        {"question": "q1", "verdict": "yes", "score": 0.9, "reason": "a cat is on the left"},
        {"question": "q2", "verdict": "no", "score": 0.1, "reason": "no dog is visible"},
    ]
}
QUESTIONS = ["Is there a cat on the left?", "Is there a dog?"]


@pytest.fixture(autouse=True)
def keys(monkeypatch, tmp_path):
    isolate_provider_env(monkeypatch, tmp_path)


@pytest.fixture
def store(tmp_path) -> Store:
    return open_store(f"sqlite:///{tmp_path / 'pakati.db'}")


def database_text(store: Store, tmp_path) -> str:
    """Every row of every table, and the raw bytes of the SQLite file and its WAL, as text to search."""
    from sqlalchemy import inspect, text

    parts = []
    with store.engine.connect() as conn:
        for table in inspect(store.engine).get_table_names():
            parts += [repr(tuple(row)) for row in conn.execute(text(f'SELECT * FROM "{table}"'))]
    for f in tmp_path.glob("pakati.db*"):
        parts.append(f.read_bytes().decode("latin-1"))
    return "\n".join(parts)


def test_a_plan_is_asked_once_and_served_from_the_database(store, tmp_path):
    wire = Wire((200, chat_body(json.dumps(answer()))))
    first = plan(GOAL, 512, 512, planner="openai", cache=store.cache, **opts(wire, recorder=store.calls))
    second = plan(GOAL, 512, 512, planner="openai", cache=store.cache, **opts(wire, recorder=store.calls))
    assert len(wire.requests) == 1 and second.to_dict() == first.to_dict()
    ((value, data),) = [store.cache.cache_get(llm.CACHE_NAMESPACE, llm.request_key("openai", None, GOAL, 512, 512, 0))]
    assert value == first.to_dict() and data is None
    plan(GOAL, 512, 512, planner="openai", seed=1, cache=store.cache, **opts(wire))  # another seed is another request
    assert len(wire.requests) == 2
    assert [c["operation"] for c in store.calls.recent()] == ["complete_json"]
    dump = database_text(store, tmp_path)
    assert SENTINEL not in dump and SENTINEL[-12:] not in dump and GOAL in dump  # the plan is kept, the key never


def test_a_read_only_database_costs_the_cache_not_the_plan(tmp_path, caplog):
    db = tmp_path / "ro.db"
    open_store(f"sqlite:///{db}")
    ro = open_store(f"sqlite:///file:{db}?mode=ro&uri=true")
    wire = Wire((200, anthropic_body(answer())))
    with caplog.at_level("ERROR", logger="pakati"):
        p = plan(GOAL, 512, 512, planner="anthropic", cache=ro.cache, **opts(wire))
        again = plan(GOAL, 512, 512, planner="anthropic", cache=ro.cache, **opts(wire))
    assert p.planner == "llm:anthropic" and again.to_dict() == p.to_dict() and len(wire.requests) == 2
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "a plan result was not cached (the result is unaffected)" in logged and "read-only" in logged


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_an_identical_re_check_makes_no_call(store, tmp_path, provider):
    body = chat_body(json.dumps(ANSWERS)) if provider == "openai" else anthropic_body(ANSWERS)
    wire = Wire((200, body))
    judge = CachedJudge(make_judge(provider, **opts(wire, recorder=store.calls)), store.cache)
    image = photo()
    first = judge.ask(image, QUESTIONS)
    again = judge.ask(image.copy(), QUESTIONS)
    assert len(wire.requests) == 1 and again == first and judge.hits == 1
    assert [a.verdict for a in first] == ["yes", "no"] and first[0].question == QUESTIONS[0]
    judge.ask(image, QUESTIONS[::-1])  # other questions: asked
    other = image.copy()
    other[0, 0] = (1.0, 0.0, 0.0)  # one pixel changed: asked
    judge.ask(other, QUESTIONS)
    assert len(wire.requests) == 3
    CachedJudge(make_judge(provider, **opts(wire)), store.for_user("bob").cache).ask(image, QUESTIONS)
    assert len(wire.requests) == 4, "bob's cache does not hold alice's answers"
    dump = database_text(store, tmp_path)
    assert SENTINEL not in dump and SENTINEL[-12:] not in dump and "a cat is on the left" in dump
    assert QUESTIONS[0] not in dump, "only verdicts, scores and reasons are cached; the questions are not"


def test_the_checker_with_a_cached_judge_over_the_fake_provider(store, tmp_path, fake_openai, monkeypatch):
    """check_alignment's judge (the one provider call per image) through the SDK to the local fake endpoint."""
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.url)
    p = plan("a black cat next to a wooden table in a kitchen", 128, 128)
    img = np.full((128, 128, 3), 0.5, np.float32)
    before = sum(r["path"].endswith("/chat/completions") for r in fake_openai.requests)
    judge = CachedJudge(make_judge("openai", recorder=store.calls), store.cache)
    first = check_alignment(img, p, judge=judge)
    sent = sum(r["path"].endswith("/chat/completions") for r in fake_openai.requests) - before
    assert sent == 1 and any(v.source == "judge" for v in first.verdicts)
    second = check_alignment(img, p, judge=CachedJudge(make_judge("openai", recorder=store.calls), store.cache))
    assert sum(r["path"].endswith("/chat/completions") for r in fake_openai.requests) - before == 1, "the re-check made no call"
    assert second.to_dict() == first.to_dict()
    with store.engine.connect() as conn:
        from sqlalchemy import text

        assert conn.execute(text("SELECT count(*) FROM cache_entries WHERE namespace = :n"), {"n": JUDGE_CACHE_NAMESPACE}).scalar() == 1
    assert SENTINEL not in database_text(store, tmp_path)
