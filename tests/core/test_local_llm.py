"""Local LLMs as planners and judges: the official ``openai`` SDK against a chat-completions server on 127.0.0.1
(tests/model_fakes.FakeLocalChatServer) that honours json_schema, only JSON mode, or ignores the format and
answers prose."""

from __future__ import annotations

import json

import numpy as np
import pytest

from model_fakes import FakeLocalChatServer, fake_answers
from pakati_core.cache import MemoryCache
from pakati_core.models import ListRecorder, ModelConfigError, make_judge, make_planner
from pakati_core.models.local_provider import extract_json
from pakati_core.orchestration import PlannerError, check_alignment, plan
from provider_wire import isolate_provider_env

GOAL = "a black cat next to a brown dog"
PLAN_ANSWER = {
    "base_prompt": GOAL,
    "base_negative": "blurry",
    "background": "",
    "objects": [
        {
            "id": "cat",
            "noun": "cat",
            "phrase": "black cat",
            "attributes": [{"kind": "colour", "value": "black"}],
            "box": [0.08, 0.35, 0.44, 0.85],
        },
        {
            "id": "dog",
            "noun": "dog",
            "phrase": "brown dog",
            "attributes": [{"kind": "colour", "value": "brown"}],
            "box": [0.52, 0.3, 0.92, 0.85],
        },
    ],
    "relations": [{"subject": "cat", "relation": "near", "object": "dog"}],
}


def answer(messages: list[dict]) -> dict:
    text = json.dumps(messages)
    return PLAN_ANSWER if "Goal:" in text else fake_answers(text)


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    isolate_provider_env(monkeypatch, tmp_path)
    for var in ("PAKATI_LOCAL_LLM_URL", "PAKATI_LOCAL_LLM_MODEL", "PAKATI_LOCAL_LLM_KEY"):
        monkeypatch.delenv(var, raising=False)


def test_structured_output_plan_with_no_key_a_call_record_and_the_plan_cache(monkeypatch):
    with FakeLocalChatServer("schema", answer) as server:
        monkeypatch.setenv("PAKATI_LOCAL_LLM_URL", server.url)
        rec, cache = ListRecorder(), MemoryCache()
        p = plan(GOAL, 1024, 768, planner="local", model="llama3.2", recorder=rec, cache=cache)
        assert p.planner == "llm:local" and {o.noun for o in p.objects} == {"cat", "dog"}
        assert p.region("cat")["prompt"] == "black cat"
        assert [r["format"] for r in server.requests] == ["json_schema"] and server.requests[0]["model"] == "llama3.2"
        assert server.requests[0]["auth"] == "Bearer not-needed"  # no key needed, none leaked
        assert len(rec.calls) == 1 and rec.calls[0].provider == "local" and rec.calls[0].model == "llama3.2"
        again = plan(GOAL, 1024, 768, planner="local", model="llama3.2", recorder=rec, cache=cache)
        assert again.to_dict() == p.to_dict() and len(server.requests) == 1  # from the plan cache


def test_a_server_without_json_schema_is_asked_in_json_mode_with_the_schema(monkeypatch):
    with FakeLocalChatServer("json_mode", answer) as server:
        monkeypatch.setenv("PAKATI_LOCAL_LLM_URL", server.url)
        monkeypatch.setenv("PAKATI_LOCAL_LLM_MODEL", "qwen2.5")
        p = plan(GOAL, 1024, 768, planner="local", cache=MemoryCache())
        assert {o.noun for o in p.objects} == {"cat", "dog"}
        assert [r["format"] for r in server.requests] == ["json_schema", "json_object"]
        assert server.requests[1]["model"] == "qwen2.5"


def test_a_server_that_ignores_response_format_and_answers_prose_around_json(monkeypatch):
    with FakeLocalChatServer("prose", answer) as server:
        monkeypatch.setenv("PAKATI_LOCAL_LLM_URL", server.url)
        p = plan(GOAL, 1024, 768, planner="local", model="mistral", cache=MemoryCache())
        assert {o.noun for o in p.objects} == {"cat", "dog"} and len(server.requests) == 1


def test_prose_without_json_is_repaired_at_most_twice_then_a_typed_error(monkeypatch):
    with FakeLocalChatServer("prose_only", answer) as server:
        monkeypatch.setenv("PAKATI_LOCAL_LLM_URL", server.url)
        planner = make_planner("local", "mistral")
        with pytest.raises(Exception, match="no valid JSON .* after 2 repairs") as e:
            planner.complete_json("system", "Goal: a cat", {"type": "object"})
        assert type(e.value).__name__ == "MalformedResponseError"
        # one structured try, then JSON mode with two repairs that quote the conversation so far
        assert [r["format"] for r in server.requests] == ["json_schema", "json_object", "json_object", "json_object"]
        assert [r["messages"] for r in server.requests[1:]] == [2, 4, 6]
        with pytest.raises(PlannerError, match="local planner gave no usable plan"):
            plan(GOAL, 512, 512, planner="local", model="mistral", cache=MemoryCache())


def test_no_endpoint_or_no_model_is_a_clear_error_naming_the_setting(monkeypatch):
    with pytest.raises(ModelConfigError, match="PAKATI_LOCAL_LLM_URL"):
        make_planner("local", "llama3.2")
    monkeypatch.setenv("PAKATI_LOCAL_LLM_URL", "file:///etc/passwd")
    with pytest.raises(ModelConfigError, match="http"):
        make_planner("local", "llama3.2")
    monkeypatch.setenv("PAKATI_LOCAL_LLM_URL", "http://127.0.0.1:9/v1")
    with pytest.raises(ModelConfigError, match="PAKATI_LOCAL_LLM_MODEL"):
        make_planner("local")


def test_local_vision_judge_answers_the_checker(monkeypatch):
    with FakeLocalChatServer("json_mode", answer) as server:
        monkeypatch.setenv("PAKATI_LOCAL_LLM_URL", server.url)
        p = plan("a red ball next to a blue cube", 256, 256)
        image = np.zeros((256, 256, 3), np.float32)
        result = check_alignment(image, p, judge=make_judge("local", "llava"))
        judged = [v for v in result.verdicts if v.source == "judge"]
        assert judged and all(v.verdict == "yes" and v.reason == "the fake judge sees it" for v in judged)
        assert server.requests and server.requests[-1]["format"] == "json_object" and server.requests[0]["model"] == "llava"


def test_extract_json_reads_plain_fenced_and_embedded_objects():
    assert extract_json('{"a": 1}') == {"a": 1}
    assert extract_json('Here:\n```json\n{"a": [1, 2]}\n```') == {"a": [1, 2]}
    assert extract_json('The answer is {"a": "x}y", "b": {"c": 2}} as asked.') == {"a": "x}y", "b": {"c": 2}}
    with pytest.raises(ValueError):
        extract_json("no json here")
