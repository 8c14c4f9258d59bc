"""Issue 20 in-process (ComfyUI imported, the pack loaded by its own loader): prompt-id bookkeeping is
bounded and never overwritten, unknown users under --multi-user are nobody (never "default"), and
the user hash ComfyUI writes into PNG metadata is an HMAC under a per-install 0600 secret."""

from __future__ import annotations

import hashlib
import hmac
import json
import stat
import sys
import tracemalloc

import pytest

from conftest import loaded_pack

pytestmark = pytest.mark.host

CANVAS = {
    "version": 1,
    "width": 64,
    "height": 64,
    "regions": [{"id": "r1", "name": "sky", "shape": "rect", "points": [[0, 0], [64, 24]], "prompt": "blue sky"}],
}


@pytest.fixture
def persistence(comfy):
    return sys.modules[loaded_pack().__name__ + ".nodes.persistence"]


@pytest.fixture
def user_dir(comfy, tmp_path):
    import folder_paths

    old = folder_paths.get_user_directory()
    folder_paths.set_user_directory(str(tmp_path / "user"))
    yield tmp_path / "user"
    folder_paths.set_user_directory(old)


@pytest.fixture
def multi_user(comfy):
    from comfy.cli_args import args

    old = args.multi_user
    args.multi_user = True
    yield
    args.multi_user = old


def test_a_mapped_prompt_id_is_never_overwritten(persistence):
    alice = {"prompt": {}, "prompt_id": "shared-id-1"}
    assert persistence.claim_prompt_id(alice, "alice") == "shared-id-1" == alice["prompt_id"]
    bob = {"prompt": {}, "prompt_id": "shared-id-1"}
    fresh = persistence.claim_prompt_id(bob, "bob")
    assert fresh != "shared-id-1" and bob["prompt_id"] == fresh and len(fresh) == 36  # ComfyUI runs bob's prompt under the fresh id
    assert persistence._prompt_users["shared-id-1"][0] == "alice" and persistence._prompt_users[fresh][0] == "bob"
    for odd in (12345, None, "", ["x"], "x" * 129):
        doc = {"prompt": {}, "prompt_id": odd}
        assert len(persistence.claim_prompt_id(doc, "carol")) == 36 and doc["prompt_id"] != odd
    persistence.forget_prompt("shared-id-1")
    persistence.forget_prompt(fresh)
    assert "shared-id-1" not in persistence._prompt_users


def test_prompt_id_bookkeeping_is_bounded(persistence):
    """Twenty rejected 5 MB ids once added 114 MB; now each entry is a 36-character uuid."""
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    claimed = []
    for i in range(20):
        doc = {"prompt": {}, "prompt_id": str(i) * (5 * 1024 * 1024)}
        claimed.append(persistence.claim_prompt_id(doc, "mallory"))
        del doc
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert all(len(p) == 36 for p in claimed) and grown < 1024 * 1024, grown
    for p in claimed:
        persistence.forget_prompt(p)


def test_entries_of_prompts_no_longer_queued_expire(persistence, monkeypatch):
    doc = {"prompt": {}, "prompt_id": "old-run"}
    persistence.claim_prompt_id(doc, "alice")
    still = {"prompt": {}, "prompt_id": "queued-run"}
    persistence.claim_prompt_id(still, "alice")
    monkeypatch.setattr(persistence, "PROMPT_GRACE_S", -1.0)  # both are past the grace period now
    persistence.claim_prompt_id({"prompt": {}, "prompt_id": "new-run"}, "bob", live_ids=lambda: {"queued-run"})
    assert "old-run" not in persistence._prompt_users and "queued-run" in persistence._prompt_users
    for p in ("queued-run", "new-run"):
        persistence.forget_prompt(p)


def test_unknown_users_under_multi_user_are_nobody(comfy, persistence, user_dir, multi_user):
    UnknownUserError = sys.modules[loaded_pack().__name__ + ".pakati_core.store"].UnknownUserError  # the pack's own class

    assert persistence.current_user() is None  # no request user, no prompt mapping, --multi-user
    with pytest.raises(UnknownUserError, match="comfy-user"):
        persistence.pakati_store()
    persistence.pakati_store("default").templates.save("defaults own", CANVAS)  # a real "default" user's row
    save, load = comfy.NODE_CLASS_MAPPINGS["PakatiSaveTemplate"], comfy.NODE_CLASS_MAPPINGS["PakatiLoadTemplate"]
    assert load.define_schema().inputs[0].options == ["(no templates saved yet)"]  # the list is empty for nobody
    assert "user is unknown" in save.validate_inputs(name="mine", settings="")
    assert "user is unknown" in load.validate_inputs(name="defaults own")
    token = persistence.request_user.set("default")
    try:
        assert "defaults own" in load.define_schema().inputs[0].options and save.validate_inputs(name="mine", settings="") is True
    finally:
        persistence.request_user.reset(token)


def test_single_user_servers_still_act_as_default(comfy, persistence, user_dir):
    from comfy.cli_args import args

    assert not args.multi_user and persistence.current_user() == "default"


def test_the_user_hash_is_an_hmac_under_a_0600_secret_beside_the_database(persistence, user_dir):
    fp = json.loads(persistence.user_fingerprint("x"))
    secret_file = user_dir / "pakati" / "user_hash.key"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600 and len(secret_file.read_bytes()) == 32
    plain = hashlib.sha256(b"pakati-user:default").hexdigest()[:16]
    keyed = hmac.new(secret_file.read_bytes(), b"pakati-user:default", hashlib.sha256).hexdigest()[:16]
    assert fp == [keyed, "x"] and keyed != plain
    assert json.loads(persistence.user_fingerprint("x")) == fp  # stable: the secret is made once


def test_an_unwritable_secret_location_still_fingerprints(persistence, user_dir):
    """The secret cannot be written (here <user dir>/pakati is a file, which stops root too): a secret of this
    process is used, and nodes never fail for it."""
    user_dir.mkdir(parents=True, exist_ok=True)
    (user_dir / "pakati").write_text("not a directory")
    fp = json.loads(persistence.user_fingerprint())
    assert len(fp[0]) == 16 and json.loads(persistence.user_fingerprint()) == fp
