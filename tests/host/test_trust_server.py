"""Issue 20 on a real ComfyUI server started with --multi-user: no user takes over another's run by its
prompt id, a database locked by another process never freezes the server, unknown users act as nobody,
and the routes cap, validate and word their answers (RFC 5987 download names, 413 over 2 MB, 400 for
JSON nested too deep, 503 without paths, hosts or SQL). Last, a Hypothesis property over every
/pakati/* route: never a 500, never slower than 1 s, never a change to another user's rows."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import textwrap
import threading
import time
import urllib.parse

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from pakati_core.store import open_store
from store_helpers import CANVAS, REPO, call, put_inputs, refine_prompt, template_prompt

pytestmark = pytest.mark.host


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A --multi-user server of its own (its own SQLite database under <base>/user/pakati), with users alice and bob."""
    from comfy_client import ComfyServer
    from harness import HOST, HOST_NODES, NO_HOST_REASON, missing

    if HOST is None:
        missing(NO_HOST_REASON)  # a failure, not a skip, where PAKATI_REQUIRE_HOST=1
    base = tmp_path_factory.mktemp("comfy_trust")
    srv = ComfyServer(
        HOST, base, packs={"pakati": REPO, "pakati_test_nodes": HOST_NODES / "pakati_test_nodes"}, extra_args=["--multi-user"]
    )
    srv.start()
    put_inputs(base)
    srv.alice = call(srv, "POST", "/users", {"username": "alice"})[1]
    srv.bob = call(srv, "POST", "/users", {"username": "bob"})[1]
    assert call(srv, "GET", "/pakati/templates", user=srv.alice)[0] == 200  # the database exists and is migrated
    srv.db = base / "user" / "pakati" / "pakati.db"
    try:
        yield srv
    finally:
        srv.stop()


def request(server, method: str, path: str, body: bytes | None = None, headers: dict | None = None, timeout: float = 30):
    """(status, headers, body bytes) of one raw request."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def test_a_user_cannot_take_over_another_users_run_by_its_prompt_id(server):
    prompt = refine_prompt(500)
    status, body = call(
        server, "POST", "/prompt", {"prompt": prompt, "prompt_id": "alice-run-1", "client_id": server.client_id}, server.alice
    )
    assert status == 200 and body["prompt_id"] == "alice-run-1"
    # bob read the id from /queue; a prompt ComfyUI refuses, then one it accepts, both naming alice's id
    assert call(server, "POST", "/prompt", {"prompt": {}, "prompt_id": "alice-run-1"}, server.bob)[0] == 400
    status, body = call(server, "POST", "/prompt", {"prompt": template_prompt("bob tpl"), "prompt_id": "alice-run-1"}, server.bob)
    assert status == 200 and body["prompt_id"] != "alice-run-1" and len(body["prompt_id"]) == 36
    server.wait(body["prompt_id"], timeout=300)
    server.wait("alice-run-1", timeout=600)
    mine = call(server, "GET", "/pakati/history", user=server.alice)[1]
    theirs = call(server, "GET", "/pakati/history", user=server.bob)[1]
    assert "alice-run-1" in {r["prompt_id"] for r in mine["runs"]}
    assert "alice-run-1" not in {r["prompt_id"] for r in theirs["runs"]}
    assert call(server, "GET", "/pakati/templates", user=server.bob)[1] == {"templates": ["bob tpl"]}
    # an oversized id is not kept either: ComfyUI runs the prompt under a fresh uuid4
    status, body = call(server, "POST", "/prompt", {"prompt": template_prompt("bob two"), "prompt_id": "b" * 200}, server.bob)
    assert status == 200 and len(body["prompt_id"]) == 36
    server.wait(body["prompt_id"], timeout=300)


def test_unknown_users_act_as_nobody_not_as_default(server):
    store = open_store(f"sqlite:///{server.db}")
    store.for_user("default").templates.save("defaults secret", CANVAS)
    for user in (None, "nobody"):
        status, body = call(server, "POST", "/prompt", {"prompt": template_prompt(f"by {user}")}, user)
        assert status == 400 and "user is unknown" in json.dumps(body), body
        info = call(server, "GET", "/object_info/PakatiLoadTemplate", user=user)[1]
        assert "defaults secret" not in json.dumps(info)
    assert store.for_user("default").templates.names() == ["defaults secret"]
    assert store.for_user("nobody").templates.names() == []


HOLD = textwrap.dedent("""
    import sqlite3, sys, time
    c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
    c.execute("BEGIN IMMEDIATE")
    c.execute("INSERT INTO templates (owner, name, description, canvas, settings, created_at, updated_at) "
              "VALUES ('holder', 'h', '', '{}', '{}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)")
    print("locked", flush=True)
    time.sleep(5)
    c.execute("ROLLBACK")
""")


def test_a_write_lock_held_by_another_process_never_freezes_the_server(server):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(server.db)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        held = time.monotonic()
        answers: dict = {}

        def timed(key, path):
            t0 = time.monotonic()
            answers[key] = (call(server, "GET", path, user=server.alice)[0], time.monotonic() - t0)

        templates = threading.Thread(target=timed, args=("templates", "/pakati/templates"))
        templates.start()
        time.sleep(0.05)  # the route is waiting on the database now, if it waits at all
        timed("system_stats", "/system_stats")
        timed("object_info", "/object_info/PakatiLoadTemplate")
        templates.join()
        assert time.monotonic() - held < 4.5, "the checks ran while the lock was held"
    finally:
        proc.wait(timeout=30)
    assert answers["system_stats"][0] == 200 and answers["system_stats"][1] < 0.5, answers
    assert answers["object_info"][0] == 200 and answers["object_info"][1] < 0.5, answers
    assert answers["templates"][0] in (200, 503) and answers["templates"][1] < 1.5, answers


def test_export_names_the_download_with_rfc_5987(server):
    doc = {"format": "pakati.template", "version": 1, "name": "Ünïcode (1), v2", "description": "", "canvas": CANVAS, "settings": {}}
    assert call(server, "POST", "/pakati/templates/import", doc, server.alice)[1] == {"name": "Ünïcode (1), v2"}
    status, headers, _ = request(
        server,
        "GET",
        "/pakati/templates/export?" + urllib.parse.urlencode({"name": "Ünïcode (1), v2"}),
        headers={"comfy-user": server.alice},
    )
    assert status == 200
    assert headers["Content-Disposition"] == (
        'attachment; filename="_n_code (1), v2.pakati-template.json"; '
        "filename*=UTF-8''%C3%9Cn%C3%AFcode%20%281%29%2C%20v2.pakati-template.json"
    )


def test_import_bodies_are_capped_validated_and_never_a_500(server):
    user = {"comfy-user": server.alice, "Content-Type": "application/json"}
    big = json.dumps({"format": "pakati.template", "version": 1, "name": "big", "canvas": CANVAS, "description": "x" * (3 * 1024 * 1024)})
    status, _, body = request(server, "POST", "/pakati/templates/import", big.encode(), user)
    assert status == 413 and b"2097152" in body
    status, _, body = request(server, "POST", "/pakati/templates/import", ("[" * 5000 + "]" * 5000).encode(), user)
    assert status == 400 and b"nested too deeply" in body
    status, _, body = request(server, "POST", "/pakati/templates/import", b'{"format": "pakati.template", "name": "\xff\xfe"}', user)
    assert status == 400 and b"not UTF-8" in body
    for bad, field in (
        ({"settings": [1, 2]}, "settings"),
        ({"canvas": "garbage"}, "canvas"),
        ({"settings": {"references": [{"image_hash": "../x"}]}}, "settings.references[0]"),
        ({"name": "<img src=x onerror=alert(1)>"}, "name"),
    ):
        doc = {"format": "pakati.template", "version": 1, "name": "bad", "canvas": CANVAS, "settings": {}} | bad
        status, body = call(server, "POST", "/pakati/templates/import", doc, server.alice)
        assert status == 400 and body["field"] == field, body
    assert "big" not in call(server, "GET", "/pakati/templates", user=server.alice)[1]["templates"]


def test_503_bodies_name_no_path_host_or_user(server):
    config = server.base / "user" / "pakati" / "database.json"
    secrets = {
        "postgresql+psycopg://pakati_secret_role:pw@127.0.0.1:9/pakati_secret_db": [
            "pakati_secret_role",
            "127.0.0.1",
            "pakati_secret_db",
            ":9",
        ],
        "sqlite:////proc/pakati_secret_dir/pakati.db": ["/proc", "pakati_secret_dir"],
    }
    try:
        for url, words in secrets.items():
            config.write_text(json.dumps({"url": url}))
            for path in ("/pakati/templates", "/pakati/history", "/pakati/templates/export?name=x"):
                status, _, body = request(server, "GET", path, headers={"comfy-user": server.alice})
                assert status == 503, (path, body)
                assert json.loads(body) == {
                    "error": "Pakati's database cannot be used right now (it is busy, locked or unreachable); the server log says why",
                    "field": "database",
                }
                assert not any(w.encode() in body for w in words) and b"SELECT" not in body and b"sqlite" not in body.lower()
    finally:
        config.unlink()
    assert call(server, "GET", "/pakati/templates", user=server.alice)[0] == 200


# -- the property: every /pakati/* route ----------------------------------------------------------------------------

PATHS = ["/pakati/history", "/pakati/templates", "/pakati/templates/export", "/pakati/templates/import", "/pakati/nothing"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


@st.composite
def bodies(draw):
    kind = draw(st.sampled_from(["none", "json", "template", "deep", "bytes", "huge"]))
    if kind == "none":
        return None
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    if kind == "template":
        doc = {
            "format": "pakati.template",
            "version": draw(st.sampled_from([1, 2, "1"])),
            "name": draw(st.text(max_size=140)),
            "canvas": draw(st.sampled_from([CANVAS, {"version": 1}, None])) if draw(st.booleans()) else draw(json_values),
            "settings": draw(json_values),
            "description": draw(json_values),
        }
        return json.dumps(doc).encode()
    if kind == "deep":
        n = draw(st.integers(0, 6000))
        return (draw(st.sampled_from(["[", '{"a":'])) * n).encode()
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    return b'"' + b"x" * draw(st.sampled_from([10_000, 1_500_000, 2_200_000])) + b'"'


@st.composite
def requests_(draw, users):
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]))
    path = draw(st.sampled_from(PATHS))
    query = draw(
        st.dictionaries(
            st.sampled_from(["name", "limit", "offset", "overwrite", "x"]),
            st.text(max_size=30) | st.sampled_from(["1", "-1", "9" * 30, "alice's", "0"]),
            max_size=3,
        )
    )
    headers = {}
    user = draw(st.sampled_from(users))
    if user is not None:
        headers["comfy-user"] = user
    for name in draw(st.lists(st.sampled_from(["Content-Type", "Accept", "X-Forwarded-For", "Cookie"]), max_size=2, unique=True)):
        headers[name] = draw(st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40))
    return method, path + ("?" + urllib.parse.urlencode(query) if query else ""), headers, draw(bodies())


def rows_of(db, owner: str) -> list:
    with open_store(f"sqlite:///{db}").engine.connect() as conn:
        tpl = conn.execute(
            text("SELECT name, description, canvas, settings, updated_at FROM templates WHERE owner = :o ORDER BY id"), {"o": owner}
        ).all()
        runs = conn.execute(text("SELECT id, prompt_id, canvas FROM runs WHERE owner = :o ORDER BY id"), {"o": owner}).all()
    return [tuple(r) for r in tpl] + [tuple(r) for r in runs]


def test_no_request_to_a_pakati_route_gives_a_500_takes_over_1_s_or_touches_another_users_rows(server):
    call(
        server,
        "POST",
        "/pakati/templates/import",
        {"format": "pakati.template", "version": 1, "name": "alice keeps this", "canvas": CANVAS, "settings": {}},
        server.alice,
    )
    before = rows_of(server.db, server.alice)
    assert before
    users = [server.bob, "nobody", "", "x" * 300, "default", None]
    worst: list = [0.0, None]

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(requests_(users))
    def check(req):
        method, path, headers, body = req
        took = float("inf")
        for _ in range(3):  # the shared test machine stalls a process now and then: slow means slow three times running
            t0 = time.monotonic()
            status, _, answer = request(server, method, path, body, headers)
            took = min(took, time.monotonic() - t0)
            if took < 1.0:
                break
        if took > worst[0]:
            worst[:] = [took, (method, path[:80], status)]
        assert status < 500, (method, path[:200], headers, (body or b"")[:200], status, answer[:300])
        assert took < 1.0, (method, path[:200], status, took)

    check()
    assert rows_of(server.db, server.alice) == before, "another user's rows changed"
    print(f"slowest answer: {worst[0]:.3f} s {worst[1]}")
