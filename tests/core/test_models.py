"""The model layer over the real OpenAI and Anthropic SDK clients, with only the HTTP transport mocked.

Each test builds the SDK's own client (``openai.OpenAI`` / ``anthropic.Anthropic``) on an
``httpx2.Client`` whose ``MockTransport`` answers like the provider would: 401, 429 with
Retry-After, 5xx/529, timeouts, refusals, malformed JSON, wrong-size images, retired models.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import httpx2  # noqa: E402  (the SDKs' HTTP library)
import numpy as np
import pytest

from model_fakes import anthropic_body, anthropic_error, chat_body, decode_png, images_body, multipart_files, openai_error  # noqa: E402
from pakati_core.models import (  # noqa: E402
    Answer,
    KeyFileInsecureError,
    KeyMissingError,
    KeyRejectedError,
    ListRecorder,
    MalformedResponseError,
    ModelNeeds,
    ModelRetiredError,
    ProviderRefusedError,
    ProviderRequestError,
    ProviderUnavailableError,
    RateLimitedError,
    Registry,
    make_image_backend,
    make_judge,
    make_planner,
    resolve_key,
    select_model,
)
from pakati_core.models.protocols import CallRecord, ImageBackend, TextPlanner, VisionJudge  # noqa: E402
from pakati_core.models.ratelimit import TokenBucket  # noqa: E402
from pakati_core.models.registry import merge, shipped_config  # noqa: E402
from provider_wire import SENTINEL, Wire, isolate_provider_env, opts, photo  # noqa: E402

PLAN_SCHEMA = {"type": "object", "properties": {"regions": {"type": "array", "items": {"type": "string"}}}, "required": ["regions"]}


@pytest.fixture(autouse=True)
def env(monkeypatch, tmp_path):
    isolate_provider_env(monkeypatch, tmp_path)
    return tmp_path


ANSWERS = {
    "answers": [
        {"question": "q1", "verdict": "yes", "score": 0.9, "reason": "a cat is on the left"},
        {"question": "q2", "verdict": "no", "score": 0.1, "reason": "no dog is visible"},
    ]
}


# ---------------------------------------------------------------- keys


def test_resolve_key_env_pakati_names_and_named_credentials(monkeypatch):
    assert resolve_key("openai") == SENTINEL
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.setenv("PAKATI_API_KEY_OPENAI", "k-pakati")
    assert resolve_key("openai") == "k-pakati"
    monkeypatch.setenv("PAKATI_API_KEY_OPENAI_TEAM_B", "k-team")
    assert resolve_key("openai", "team-b") == "k-team"
    with pytest.raises(KeyMissingError) as e:
        resolve_key("anthropic", "other")
    assert "PAKATI_API_KEY_ANTHROPIC_OTHER" in str(e.value) and e.value.provider == "anthropic"
    with pytest.raises(KeyMissingError, match="not valid"):
        resolve_key("openai", "../etc")


def test_key_file_needs_0600(monkeypatch, env):
    monkeypatch.delenv("OPENAI_API_KEY")
    path = env / "user" / "pakati" / "keys.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"openai": {"default": "k-file", "work": "k-work"}, "anthropic": "k-anth"}))
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileInsecureError, match="chmod 600") as e:
        resolve_key("openai")
    assert "k-file" not in str(e.value)
    os.chmod(path, 0o600)
    assert resolve_key("openai") == "k-file" and resolve_key("openai", "work") == "k-work"
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    assert resolve_key("anthropic") == "k-anth"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_no_key_is_key_missing_before_any_call(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    wire = Wire((200, anthropic_body({"regions": []})))
    with pytest.raises(KeyMissingError, match="ANTHROPIC_API_KEY"):
        make_planner("anthropic", **opts(wire))
    assert wire.requests == []


def test_core_imports_without_the_sdks():
    """The model layer imports where the SDKs are missing; making a provider names the package to install."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['openai'] = None; sys.modules['anthropic'] = None\n"
        "from pakati_core.models import make_planner, make_image_backend, OptionalPackageMissingError\n"
        "for make, p in ((make_planner, 'anthropic'), (make_image_backend, 'openai')):\n"
        "    try:\n        make(p)\n    except OptionalPackageMissingError as e:\n        print(e.message)\n"
    )
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=repo,
        capture_output=True,
        text=True,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(repo), "OPENAI_API_KEY": "x", "ANTHROPIC_API_KEY": "x"},
    )
    assert out.stdout.splitlines() == [
        f"the optional package '{p}' is not installed; install it with: pip install {p}" for p in ("anthropic", "openai")
    ], out.stderr


# ---------------------------------------------------------------- registry and selector


def test_registry_defaults_and_user_override(env, monkeypatch):
    reg = Registry.load()
    assert reg.default("openai", "image") == reg.resolve("openai", "image").spec.name
    override = env / "models.json"
    override.write_text(
        json.dumps(
            {
                "version": 1,
                "defaults": {"openai": {"image": "gpt-image-1-mini"}},
                "models": [
                    {"name": "my-gateway-image", "provider": "openai", "kinds": ["image"], "sizes": ["512x512"], "inpainting": True}
                ],
            }
        )
    )
    reg = Registry.load()
    assert reg.resolve("openai", "image").spec.name == "gpt-image-1-mini"
    assert reg.get("my-gateway-image").sizes == ((512, 512),)
    assert reg.default("anthropic", "vision")  # untouched shipped default survives the merge
    unknown = reg.resolve("openai", "image", "gpt-image-9")
    assert not unknown.spec.known and unknown.spec.sizes  # allowed, with the default's capabilities


def test_shipped_defaults_are_current_models_and_legacy_ones_stay_usable():
    """The defaults are the providers' current models (checked 2026-12-05); legacy models still resolve; retired ones
    name their replacement; the selector takes a current model before a legacy one."""
    reg = Registry.load()
    assert reg.default("anthropic", "vision") == reg.default("anthropic", "text") == "claude-sonnet-5-5"
    assert reg.default("openai", "vision") == reg.default("openai", "text") == "gpt-6.2-sol"
    for provider, kinds in (("openai", ("image", "vision", "text")), ("anthropic", ("vision", "text"))):
        for kind in kinds:
            spec = reg.resolve(provider, kind).spec
            assert spec.known and not spec.legacy and not spec.retired and spec.cost() is not None, (provider, kind)
    for name in ("claude-sonnet-4-6", "claude-haiku-4-5", "claude-opus-4-7", "gpt-5.4-mini", "gpt-4o"):
        spec = reg.get(name)
        assert spec.legacy and not spec.retired and reg.resolve(spec.provider, "vision", name).spec is spec
    with pytest.raises(ModelRetiredError, match="claude-sonnet-5-5"):
        reg.resolve("anthropic", "vision", "claude-sonnet-4-5-20250929", setting="PakatiAskVision input 'model'")
    with pytest.raises(ModelRetiredError, match="gpt-image-2"):
        reg.resolve("openai", "image", "gpt-image-1")
    legacy_cheap = {
        "version": 1,
        "models": [
            {"name": "claude-haiku-4-5", "provider": "anthropic", "kinds": ["vision"], "legacy": True, "cost_usd": {"call": 0.00001}}
        ],
    }
    pick = select_model(
        ModelNeeds("vision", provider="anthropic"), Registry(merge(shipped_config(), legacy_cheap)), key_available=lambda p: True
    )
    names = [n for n, _ in pick.ranked]
    assert not pick.spec.legacy and names.index("claude-haiku-4-5") > max(names.index(n) for n in names if not reg.get(n).legacy)
    assert "claude-haiku-4-5" not in pick.rejected  # legacy is ranked after the current models, never ruled out


def test_retired_model_names_the_setting(env):
    reg = Registry.load()
    with pytest.raises(ModelRetiredError) as e:
        reg.resolve("openai", "image", "dall-e-2", setting="PakatiOpenAIGenerate input 'model'")
    assert "PakatiOpenAIGenerate input 'model'" in str(e.value) and "gpt-image" in str(e.value)
    (env / "models.json").write_text(json.dumps({"version": 1, "defaults": {"anthropic": {"vision": "claude-3-opus-20240229"}}}))
    with pytest.raises(ModelRetiredError, match=r"defaults\.anthropic\.vision in .*models\.json"):
        make_judge("anthropic", **opts(Wire((200, anthropic_body(ANSWERS)))))


def test_selector_explains_and_learns_from_records():
    reg = Registry.load()
    first = select_model(ModelNeeds("image", size=(1024, 1024), inpainting=True), reg)
    assert first.spec.inpainting and "edits with a mask" in first.reason
    assert "dall-e-2" in first.rejected and "retired" in first.rejected["dall-e-2"]
    failing = [CallRecord("openai", first.spec.name, "edit", 1.0, ok=False, error_kind="unavailable") for _ in range(6)]
    second = select_model(ModelNeeds("image", size=(1024, 1024), inpainting=True), reg, records=failing)
    assert second.spec.name != first.spec.name and second.spec.inpainting
    assert second.ranked[-1] == (first.spec.name, pytest.approx(1 / 8))  # 0 of 6 calls worked: (0 + 1) / (6 + 2)
    only_anthropic = select_model(ModelNeeds("vision"), reg, key_available=lambda p: p == "anthropic")
    assert only_anthropic.spec.provider == "anthropic"
    assert any("no key configured for openai" in why for why in only_anthropic.rejected.values())
    assert "chose anthropic:" in only_anthropic.explain()


# ---------------------------------------------------------------- token bucket and retries


def test_token_bucket_keeps_under_the_rate():
    now = [0.0]
    slept = []

    def sleep(s):
        slept.append(s)
        now[0] += s

    bucket = TokenBucket(rate=2.0, capacity=2, clock=lambda: now[0], sleep=sleep)
    waits = [bucket.acquire() for _ in range(6)]
    assert waits[:2] == [0.0, 0.0] and all(w > 0 for w in waits[2:])
    assert now[0] == pytest.approx(2.0)  # 6 calls at 2/s with a burst of 2: 4 waited for, 2 s


# ---------------------------------------------------------------- planner and judge over both SDKs


def test_openai_planner_and_judge_structured_output():
    wire = Wire((200, chat_body(json.dumps({"regions": ["sky", "sea"]}))), (200, chat_body(json.dumps(ANSWERS))))
    rec = ListRecorder()
    planner = make_planner("openai", **opts(wire, recorder=rec))
    assert isinstance(planner, TextPlanner)
    assert planner.complete_json("plan", "a sky over a sea", PLAN_SCHEMA) == {"regions": ["sky", "sea"]}
    sent = json.loads(wire.requests[0].content)
    assert sent["response_format"]["type"] == "json_schema" and sent["response_format"]["json_schema"]["schema"] == PLAN_SCHEMA
    assert wire.requests[0].headers["authorization"] == f"Bearer {SENTINEL}"
    judge = make_judge("openai", **opts(wire, recorder=rec))
    assert isinstance(judge, VisionJudge)
    answers = judge.ask(photo(), ["Is there a cat on the left?", "Is there a dog?"])
    assert answers == [
        Answer("Is there a cat on the left?", "yes", 0.9, "a cat is on the left"),
        Answer("Is there a dog?", "no", 0.1, "no dog is visible"),
    ]
    user = json.loads(wire.requests[1].content)["messages"][1]["content"]
    assert user[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert [c.operation for c in rec.calls] == ["complete_json", "ask"] and all(c.ok and c.prompt is None for c in rec.calls)
    assert SENTINEL not in repr(planner) + repr(judge) + repr(rec.calls)


def _objects(schema: dict):
    """Every object node of a JSON schema."""
    if schema.get("type") == "object":
        yield schema
    for sub in [*(schema.get("properties") or {}).values(), *([schema["items"]] if "items" in schema else [])]:
        yield from _objects(sub)


def test_anthropic_planner_and_judge_use_structured_outputs():
    """The request the SDK sent: ``output_config.format`` with the schema in the API's subset, no tool forcing, no sampling
    parameters; the answer read from the text block (after a thinking block) and checked against the original schema."""
    import anthropic

    wire = Wire((200, anthropic_body({"regions": ["sky"]})), (200, anthropic_body(ANSWERS, thinking=True)))
    planner = make_planner("anthropic", **opts(wire))
    assert planner.complete_json("plan", "a sky", PLAN_SCHEMA) == {"regions": ["sky"]}
    sent = json.loads(wire.requests[0].content)
    assert sent["model"] == "claude-sonnet-5-5" and sent["max_tokens"] == 16000 and sent["system"] == "plan"
    assert sent["output_config"] == {"format": {"type": "json_schema", "schema": anthropic.transform_schema(PLAN_SCHEMA)}}
    assert sent["output_config"]["format"]["schema"]["additionalProperties"] is False  # PLAN_SCHEMA left it open; the API wants it closed
    assert not {"tools", "tool_choice", "temperature", "top_p", "top_k", "output_format"} & set(sent)
    h = wire.requests[0].headers
    assert SENTINEL in (h.get("x-api-key", "") + h.get("authorization", ""))  # this SDK release sends the key as a bearer token
    judge = make_judge("anthropic", **opts(wire))
    answers = judge.ask(photo(), ["q1?", "q2?"])
    assert answers == [Answer("q1?", "yes", 0.9, "a cat is on the left"), Answer("q2?", "no", 0.1, "no dog is visible")]
    sent = json.loads(wire.requests[1].content)
    img = sent["messages"][0]["content"][0]
    assert img["type"] == "image" and img["source"]["media_type"] == "image/png"
    schema = sent["output_config"]["format"]["schema"]
    score = schema["properties"]["answers"]["items"]["properties"]["score"]
    assert "minimum" not in score and "maximum" not in score and "maximum: 1" in score["description"]  # the range moves to the description
    objects = list(_objects(schema))  # the answers object and each answer
    assert len(objects) == 2 and all(o["additionalProperties"] is False for o in objects)
    assert not {"tools", "tool_choice", "temperature"} & set(sent)


def test_anthropic_failures_are_typed_and_name_provider_and_model():
    too_long = Wire((200, anthropic_body(stop_reason="max_tokens", text='{"answers": [{"question": "q1", "verd')))
    with pytest.raises(
        MalformedResponseError,
        match=r"anthropic ran out of tokens .*model 'claude-sonnet-5-5', max_tokens 16000.*"
        r"providers\.anthropic\.max_tokens",
    ) as e:
        make_judge("anthropic", **opts(too_long)).ask(photo(), ["q?"])
    assert e.value.provider == "anthropic" and len(too_long.requests) == 1  # not retried: the same request would run out again
    prose = Wire((200, anthropic_body(text="Sure! Here it is.", thinking=True)))
    with pytest.raises(
        MalformedResponseError, match=r"anthropic returned text that is not JSON for judge answers \(model 'claude-sonnet-5-5': "
    ):
        make_judge("anthropic", **opts(prose)).ask(photo(), ["q?"])
    silent = Wire((200, anthropic_body(thinking=True)))  # a thinking block and no text block
    with pytest.raises(
        MalformedResponseError, match=r"without the structured output for the plan \(model 'claude-sonnet-5-5', stop reason 'end_turn'\)"
    ):
        make_planner("anthropic", **opts(silent)).complete_json("s", "u", PLAN_SCHEMA)
    refused = Wire((200, anthropic_body(stop_reason="refusal")))
    with pytest.raises(ProviderRefusedError, match=r"anthropic refused to answer \(model 'claude-haiku-5-5'\)"):
        make_judge("anthropic", "claude-haiku-5-5", **opts(refused)).ask(photo(), ["q?"])
    wrong = Wire((200, anthropic_body({"answers": [{"question": "q", "verdict": "maybe", "score": 0.5, "reason": "r"}]})))
    with pytest.raises(MalformedResponseError, match=r"does not match the schema at answers/0/verdict.*\(model 'claude-sonnet-5-5'\)"):
        make_judge("anthropic", **opts(wrong)).ask(photo(), ["q?"])
    untyped = Wire((200, anthropic_body({})))
    with pytest.raises(
        ProviderRequestError, match=r"schema for the plan cannot be sent to provider anthropic \(model 'claude-sonnet-5-5'\)"
    ) as e:
        make_planner("anthropic", **opts(untyped)).complete_json("s", "u", {"properties": {"a": {"type": "string"}}})
    assert e.value.field == "schema" and untyped.requests == []  # refused before any call


def test_base_url_env_is_honoured(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://gateway.test/anthropic")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://gateway.test/openai/v1")
    wire = Wire((200, anthropic_body({"regions": []})))
    make_planner("anthropic", **opts(wire)).complete_json("s", "u", PLAN_SCHEMA)
    wire2 = Wire((200, chat_body(json.dumps({"regions": []}))))
    make_planner("openai", **opts(wire2)).complete_json("s", "u", PLAN_SCHEMA)
    assert str(wire.requests[0].url) == "http://gateway.test/anthropic/v1/messages"
    assert str(wire2.requests[0].url) == "http://gateway.test/openai/v1/chat/completions"


# ---------------------------------------------------------------- failures


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_401_is_key_rejected_naming_provider_and_credential_never_the_key(provider):
    body = (
        openai_error(401, f"Incorrect API key provided: {SENTINEL[:8]}****{SENTINEL[-4:]} full {SENTINEL}", "invalid_api_key")
        if provider == "openai"
        else anthropic_error("authentication_error", f"invalid x-api-key {SENTINEL}")
    )
    wire = Wire((401, body))
    rec = ListRecorder()
    planner = make_planner(provider, **opts(wire, recorder=rec))
    with pytest.raises(KeyRejectedError) as e:
        planner.complete_json("s", "u", PLAN_SCHEMA)
    text = str(e.value)
    assert f"key rejected for provider {provider} (credential name 'default')" in text
    assert SENTINEL not in text and SENTINEL[-8:] not in text and e.value.__cause__ is None and e.value.__suppress_context__
    assert len(wire.requests) == 1  # never retried
    assert rec.calls[-1].error_kind == "key_rejected" and not rec.calls[-1].ok


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_429_waits_for_retry_after_then_succeeds(provider):
    ok = (200, chat_body(json.dumps({"regions": ["a"]}))) if provider == "openai" else (200, anthropic_body({"regions": ["a"]}))
    err = (
        openai_error(429, "slow down", "rate_limit_exceeded") if provider == "openai" else anthropic_error("rate_limit_error", "slow down")
    )
    wire = Wire((429, err, {"retry-after": "7"}), ok)
    sleeps: list[float] = []
    rec = ListRecorder()
    assert make_planner(provider, **opts(wire, sleeps, rec)).complete_json("s", "u", PLAN_SCHEMA) == {"regions": ["a"]}
    assert sleeps == [7.0] and len(wire.requests) == 2 and rec.calls[-1].extra["calls"] == 2


def test_429_without_end_is_rate_limited_after_three_calls():
    wire = Wire((429, openai_error(429, "slow down", "rate_limit_exceeded")))
    sleeps: list[float] = []
    with pytest.raises(RateLimitedError, match="rate limiting"):
        make_planner("openai", **opts(wire, sleeps)).complete_json("s", "u", PLAN_SCHEMA)
    assert len(wire.requests) == 3 and len(sleeps) == 2
    assert 0 <= sleeps[0] <= 1.0 and 0 <= sleeps[1] <= 2.0 and sleeps[0] != sleeps[1]  # exponential bound, jittered


@pytest.mark.parametrize("status,provider", [(500, "openai"), (503, "openai"), (529, "anthropic"), (502, "anthropic")])
def test_5xx_and_529_are_retried_at_most_three_calls(status, provider):
    body = (
        openai_error(status, "server error", None, "server_error")
        if provider == "openai"
        else anthropic_error("overloaded_error", "Overloaded")
    )
    wire = Wire((status, body))
    rec = ListRecorder()
    with pytest.raises(ProviderUnavailableError) as e:
        make_planner(provider, **opts(wire, recorder=rec)).complete_json("s", "u", PLAN_SCHEMA)
    assert len(wire.requests) == 3 and e.value.provider == provider and str(status) in str(e.value)
    assert rec.calls[-1].extra["calls"] == 3 and rec.calls[-1].error_kind == "unavailable"


def test_5xx_then_success_and_timeouts():
    wire = Wire((500, openai_error(500, "oops", None, "server_error")), (200, chat_body(json.dumps({"regions": []}))))
    assert make_planner("openai", **opts(wire)).complete_json("s", "u", PLAN_SCHEMA) == {"regions": []}
    assert len(wire.requests) == 2
    timeouts = Wire(httpx2.ReadTimeout("read timed out"))
    with pytest.raises(ProviderUnavailableError, match="timed out"):
        make_judge("anthropic", **opts(timeouts)).ask(photo(), ["q?"])
    assert len(timeouts.requests) == 3


def test_an_interrupt_between_calls_stops_the_retries():
    class Stop(Exception):
        pass

    def interrupt():
        raise Stop()

    wire = Wire((503, openai_error(503, "busy", None, "server_error")))
    rec = ListRecorder()
    planner = make_planner("openai", check_interrupt=interrupt, **opts(wire, recorder=rec))
    with pytest.raises(Stop):
        planner.complete_json("s", "u", PLAN_SCHEMA)
    assert len(wire.requests) == 1 and not rec.calls[-1].ok and rec.calls[-1].error_kind == "Stop"


def test_refusals_are_typed():
    wire = Wire((200, chat_body(None, refusal="I can't help with that.")))
    with pytest.raises(ProviderRefusedError) as e:
        make_judge("openai", **opts(wire)).ask(photo(), ["q?"])
    assert e.value.provider == "openai"
    wire = Wire((200, anthropic_body(None, stop_reason="refusal")))
    with pytest.raises(ProviderRefusedError):
        make_planner("anthropic", **opts(wire)).complete_json("s", "u", PLAN_SCHEMA)
    blocked = Wire((400, openai_error(400, "Your request was rejected by the safety system.", "moderation_blocked")))
    with pytest.raises(ProviderRefusedError, match="content policy"):
        make_image_backend("openai", **opts(blocked)).generate("x", (1024, 1024))
    assert len(blocked.requests) == 1


def test_malformed_answers_are_typed():
    cases = [
        ("openai", (200, chat_body("not json {"))),
        ("openai", (200, chat_body(json.dumps({"answers": [{"question": "q", "verdict": "maybe", "score": 2, "reason": ""}]})))),
        ("anthropic", (200, anthropic_body(None, stop_reason="end_turn", text="Sure! Here it is."))),
        ("anthropic", (200, anthropic_body({"answers": []}))),  # wrong count
    ]
    for provider, answer in cases:
        with pytest.raises(MalformedResponseError) as e:
            make_judge(provider, **opts(Wire(answer))).ask(photo(), ["q?"])
        assert e.value.provider == provider
    with pytest.raises(MalformedResponseError, match="does not match the schema at regions"):
        make_planner("anthropic", **opts(Wire((200, anthropic_body({"regions": "sky"}))))).complete_json("s", "u", PLAN_SCHEMA)


def test_openai_request_fits_reasoning_models_and_its_failures_name_the_model():
    """No ``max_tokens`` (deprecated, refused by reasoning models) and no sampling parameters; a completion cut by the
    token limit, an empty answer and a schema mismatch are malformed answers naming provider and model."""
    wire = Wire((200, chat_body(json.dumps(ANSWERS))))
    make_judge("openai", **opts(wire)).ask(photo(), ["a?", "b?"])
    sent = json.loads(wire.requests[0].content)
    assert sent["model"] == "gpt-6.2-sol" and sent["response_format"]["json_schema"]["strict"] is True
    assert not {"max_tokens", "temperature", "top_p", "n", "seed"} & set(sent)
    cases = [
        (chat_body("", finish_reason="length"), r"openai ran out of tokens before finishing judge answers \(model 'gpt-6.2-sol'\)"),
        (chat_body('{"answers": [', finish_reason="length"), r"ran out of tokens"),
        (chat_body(None), r"without the structured output for judge answers \(model 'gpt-6.2-sol', finish reason 'stop'\)"),
        (chat_body("not json {"), r"not JSON for judge answers \(model 'gpt-6.2-sol': Expecting value at character 0\)"),
        (chat_body(json.dumps({"answers": []})), r"answered 0 questions, but 1 were asked \(model 'gpt-6.2-sol'\)"),
    ]
    for body, message in cases:
        with pytest.raises(MalformedResponseError, match=message) as e:
            make_judge("openai", **opts(Wire((200, body)))).ask(photo(), ["q?"])
        assert e.value.provider == "openai"


def test_retired_at_the_provider_names_the_setting():
    wire = Wire((404, openai_error(404, "The model `gpt-6.2-sol` does not exist or you do not have access to it.", "model_not_found")))
    with pytest.raises(ModelRetiredError, match=r"defaults\.openai\.text") as e:
        make_planner("openai", **opts(wire)).complete_json("s", "u", PLAN_SCHEMA)
    assert "'gpt-6.2-sol'" in str(e.value) and len(wire.requests) == 1
    wire = Wire((404, anthropic_error("not_found_error", "model: claude-old")))
    with pytest.raises(ModelRetiredError, match="the 'model' input"):
        make_judge("anthropic", "claude-old", model_setting="the 'model' input", **opts(wire)).ask(photo(), ["q?"])


# ---------------------------------------------------------------- images


def test_image_generate_and_edit_over_the_sdk():
    red = np.zeros((1024, 1536, 3), np.uint8)
    red[..., 0] = 200
    wire = Wire((200, images_body(red)))
    rec = ListRecorder()
    backend = make_image_backend("openai", **opts(wire, recorder=rec))
    assert isinstance(backend, ImageBackend)
    out = backend.generate_detailed("a red wall", (1536, 1024), seed=5, quality="low")
    assert out.image.shape == (1024, 1536, 3) and out.image.dtype == np.float32 and np.isfinite(out.image).all()
    assert any("takes no seed" in n for n in out.notes)
    sent = json.loads(wire.requests[0].content)
    assert sent["size"] == "1536x1024" and sent["quality"] == "low" and "seed" not in sent
    assert rec.calls[0].estimated_cost_usd == pytest.approx(0.011) and rec.calls[0].size == "1536x1024"

    # an edit of a 96x128 image: fitted (padded + resized) to an allowed size, mask sent as alpha, result restored
    img, mask = photo(), np.zeros((96, 128), np.float32)
    mask[30:60, 40:90] = 1.0
    square = np.zeros((1024, 1024, 3), np.uint8) + 255
    wire2 = Wire((200, images_body(square)))
    res = make_image_backend("openai", **opts(wire2)).edit_detailed(img, mask, "white")
    assert res.image.shape == img.shape and res.notes[0].startswith("128x96 is not a size the API takes")
    parts = multipart_files(wire2.requests[0].headers["content-type"], wire2.requests[0].content)
    sent_img, sent_mask = decode_png(parts["image"]), decode_png(parts["mask"])
    assert parts["size"] in ("1536x1024", "1024x1024") and sent_img.shape[:2] == sent_mask.shape[:2]
    assert sent_mask.shape[2] == 4 and (sent_mask[..., 3] == 0).any() and (sent_mask[..., 3] == 255).any()


def test_size_fitting_round_trips_geometry():
    from pakati_core.models.images import fit_image, plan_fit, restore

    img = photo(96, 128)
    for allowed in (((1024, 1024),), ((1536, 1024), (1024, 1536), (1024, 1024))):
        fit = plan_fit(128, 96, allowed)
        sent = fit_image(img, fit)
        assert sent.shape[:2] == fit.sent[::-1]
        back = restore(sent, fit)
        assert back.shape == img.shape and np.abs(back - img).mean() < 0.02  # only resampling blur, no shift
    assert plan_fit(128, 96, ((1536, 1024), (1024, 1536))).sent == (1536, 1024)


def test_wrong_size_image_from_the_provider_is_resized_not_a_crash():
    small = np.zeros((300, 500, 3), np.uint8) + 90
    wire = Wire((200, images_body(small)))
    res = make_image_backend("openai", **opts(wire)).generate_detailed("grey", (1024, 1024))
    assert res.image.shape == (1024, 1024, 3)
    assert any("returned 500x300 instead of the 1024x1024" in n for n in res.notes)
    wire = Wire((200, {"created": 1, "data": [{"b64_json": "!!notbase64"}]}))
    with pytest.raises(MalformedResponseError):
        make_image_backend("openai", **opts(wire)).generate("x", (1024, 1024))
