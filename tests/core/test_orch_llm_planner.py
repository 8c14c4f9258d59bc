"""The LLM planner over the real OpenAI / Anthropic SDK clients with a mocked HTTP transport.

Good answers, rule-breaking answers (re-asked with the rules quoted), malformed answers,
refusals and timeouts each end in a valid plan or a typed error within 3 calls; no key falls
back to the offline planner with a note; answers are cached by a hash of the request.
"""

from __future__ import annotations

import json

import httpx2  # noqa: E402
import pytest

from model_fakes import anthropic_body, chat_body  # noqa: E402
from pakati_core.cache import MemoryCache  # noqa: E402
from pakati_core.models import ProviderRefusedError, ProviderUnavailableError  # noqa: E402
from pakati_core.orchestration import (  # noqa: E402
    Plan,
    PlannerError,
    llm,  # noqa: E402
    plan,
)
from pakati_core.orchestration.llm import LLM_SCHEMA  # noqa: E402
from pakati_core.orchestration.rules import layout_violations  # noqa: E402
from provider_wire import GOAL, SENTINEL, Wire, answer, isolate_provider_env, opts  # noqa: E402  (the model layer's own transport helpers)


@pytest.fixture(autouse=True)
def keys(monkeypatch, tmp_path):
    isolate_provider_env(monkeypatch, tmp_path)
    monkeypatch.setattr(llm, "_memory_cache", MemoryCache())  # each test asks afresh


def test_anthropic_structured_output_gives_a_valid_cached_plan(tmp_path):
    import anthropic

    from pakati_core.store import open_store

    store = open_store(f"sqlite:///{tmp_path / 'pakati.db'}")  # the plan cache is the database's cache table
    wire = Wire((200, anthropic_body(answer())))
    p = plan(GOAL, 768, 512, planner="anthropic", cache=store.cache, **opts(wire))
    assert p.planner == "llm:anthropic" and layout_violations(p) == []
    assert [r["id"] for r in p.canvas["regions"]] == ["background", "cat", "pillow"]
    sent = json.loads(wire.requests[0].content)
    assert sent["output_config"]["format"] == {"type": "json_schema", "schema": anthropic.transform_schema(LLM_SCHEMA)}
    assert "tool_choice" not in sent and "tools" not in sent
    again = plan(GOAL, 768, 512, planner="anthropic", cache=store.cache, **opts(wire))
    assert len(wire.requests) == 1 and again.to_dict() == p.to_dict()
    assert len(llm._memory_cache) == 0, "a cache given is the only cache used"
    assert plan(GOAL, 768, 512, planner="anthropic", cache=store.for_user("other").cache, **opts(wire)).to_dict() == p.to_dict()
    assert len(wire.requests) == 2, "another user's cache is not this user's"
    assert Plan.from_json(p.to_json()).to_dict() == p.to_dict()


def test_boxes_are_clamped_rescaled_and_relations_repaired():
    # pixel boxes, the cat on the wrong side and partly off the canvas: repaired, not re-asked
    bad = answer(cat_box=(600, 200, 900, 450), pillow_box=(-50, 220, 300, 480))
    wire = Wire((200, chat_body(json.dumps(bad))))
    p = plan(GOAL, 768, 512, planner="openai", **opts(wire))
    assert len(wire.requests) == 1 and layout_violations(p) == []
    assert all(0 <= x <= 768 and 0 <= y <= 512 for r in p.canvas["regions"] for x, y in r["points"])


def test_rule_breaking_answer_is_re_asked_with_the_rules_quoted():
    leak = answer(cat_phrase="black cat on a white pillow")
    wire = Wire((200, chat_body(json.dumps(leak))), (200, chat_body(json.dumps(answer()))))
    p = plan(GOAL, 512, 512, planner="openai", **opts(wire))
    assert len(wire.requests) == 2 and layout_violations(p) == []
    second = json.dumps(json.loads(wire.requests[1].content)["messages"][-1]["content"])
    assert "broke these rules" in second and "each attribute appears in its own object's region prompt" in second


def test_always_breaking_ends_in_a_typed_error_after_three_calls():
    wire = Wire((200, anthropic_body(answer(cat_phrase="black cat on a white pillow"))))
    with pytest.raises(PlannerError, match="after 3 calls"):
        plan(GOAL, 512, 512, planner="anthropic", **opts(wire))
    assert len(wire.requests) == 3


def test_malformed_answers_are_re_asked_then_typed():
    wire = Wire((200, chat_body("{not json")), (200, chat_body(json.dumps(answer()))))
    assert plan(GOAL, 512, 512, planner="openai", **opts(wire)).planner == "llm:openai"
    assert len(wire.requests) == 2
    wire = Wire((200, chat_body(json.dumps({"objects": "none"}))))
    with pytest.raises(PlannerError):
        plan(GOAL, 512, 512, planner="openai", seed=1, **opts(wire))
    assert len(wire.requests) <= 3


def test_refusal_and_timeouts_are_typed_within_three_calls():
    wire = Wire((200, anthropic_body(None, stop_reason="refusal")))
    with pytest.raises(ProviderRefusedError):
        plan(GOAL, 512, 512, planner="anthropic", **opts(wire))
    assert len(wire.requests) == 1
    slow = Wire(httpx2.ReadTimeout("read timed out"))
    with pytest.raises(ProviderUnavailableError):
        plan(GOAL, 512, 512, planner="openai", **opts(slow))
    assert len(slow.requests) == 3


def test_no_key_falls_back_offline_with_a_note(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    wire = Wire((200, anthropic_body(answer())))
    p = plan(GOAL, 512, 512, planner="anthropic", **opts(wire))
    assert p.planner == "offline" and any("no API key" in n for n in p.notes) and wire.requests == []
    assert SENTINEL not in p.to_json()


def test_unknown_planner_is_a_typed_error():
    with pytest.raises(PlannerError, match="unknown planner"):
        plan(GOAL, planner="oracle")


def test_checker_asks_a_real_sdk_judge_what_it_cannot_measure():
    import numpy as np

    from pakati_core.models import make_judge
    from pakati_core.orchestration import check_alignment

    p = plan(GOAL, 256, 256)
    img = np.zeros((256, 256, 3), np.float32)
    for o, colour in ((p.objects[0], (0.05, 0.05, 0.05)), (p.objects[1], (0.97, 0.97, 0.97))):
        x0, y0, x1, y1 = (int(v) for v in p.box(o.id))
        img[y0:y1, x0:x1] = colour
    answers = {
        "answers": [
            {"question": "q1", "verdict": "yes", "score": 0.95, "reason": "a cat is there"},
            {"question": "q2", "verdict": "yes", "score": 0.9, "reason": "a pillow is there"},
            {"question": "q3", "verdict": "no", "score": 0.1, "reason": "the cat is right of the pillow"},
        ]
    }
    wire = Wire((200, anthropic_body(answers)))
    r = check_alignment(img, p, judge=make_judge("anthropic", **opts(wire)))
    by = {v.question.kind: v for v in r.verdicts if v.source == "judge"}
    assert set(by) == {"exist", "relation"} and by["relation"].verdict == "no"
    assert {v.source for v in r.verdicts if v.question.kind == "attribute"} == {"colour"}
    assert len(wire.requests) == 1
    # the plan's layout keeps the relation, so the repair redraws both regions harder instead of moving boxes
    assert sorted((t.params["action"], t.region_ids) for t in r.repair_tasks if t.kind != "check") == [
        ("regenerate", ("cat",)),
        ("regenerate", ("pillow",)),
    ]
    asked = json.dumps(json.loads(wire.requests[0].content))
    assert "Is the cat on the left of the pillow?" in asked and "black" not in asked.split("Is there")[0][-200:]
    refused = Wire((200, anthropic_body(None, stop_reason="refusal")))
    with pytest.raises(ProviderRefusedError):
        check_alignment(img, p, judge=make_judge("anthropic", **opts(refused)))
