"""Test fixtures: the real ComfyUI host with the pack loaded through its loader, its server, the browser, PostgreSQL.

What the machine has (host, browser, PostgreSQL) is found by tests/harness.py, whose hooks are
re-exported here: tests that need something missing skip with one line, or fail where
PAKATI_REQUIRE_HOST=1. There is deliberately no tests/__init__.py and no root conftest.py: pytest
must never import the pack root's __init__.py (it imports ComfyUI) as a package of the test session.
"""

from __future__ import annotations

import asyncio
import sys

import pytest

from harness import (  # noqa: F401  (the harness's hooks, and names the fixtures and test helpers use)
    HOST,
    HOST_NODES,
    NO_HOST_REASON,
    REPO,
    find_host,
    missing,
    pytest_collection_modifyitems,
    pytest_configure,
    pytest_itemcollected,
    pytest_report_header,
    pytest_terminal_summary,
)


@pytest.fixture(scope="session")
def comfy():
    """ComfyUI imported in-process (CPU), with Pakati loaded through its own custom-node loader.

    Yields ComfyUI's ``nodes`` module; ``nodes.NODE_CLASS_MAPPINGS`` holds the pack's nodes.
    """
    if HOST is None:
        missing(NO_HOST_REASON)
    import torch

    sys.path.insert(0, str(HOST))
    from comfy.cli_args import args

    if not torch.cuda.is_available():
        args.cpu = True
    import nodes  # ComfyUI's

    ok = asyncio.run(nodes.load_custom_node(str(REPO)))
    assert ok, "ComfyUI's loader failed to import the Pakati pack (see the log above)"
    ok = asyncio.run(nodes.load_custom_node(str(HOST_NODES / "pakati_test_nodes")))
    assert ok, "the test-only tiny-model node failed to load"
    return nodes


def loaded_pack():
    """The Pakati package object as ComfyUI's loader imported it (module named after its path)."""
    return sys.modules[str(REPO).replace(".", "_x_")]


@pytest.fixture(scope="session")
def tiny(comfy):
    """(MODEL, CLIP, VAE): the tiny SDXL-class model built from ComfyUI's own classes."""
    from pakati_test_nodes.tiny_sdxl import tiny_sdxl

    return tiny_sdxl()


@pytest.fixture(scope="session")
def comfy_server(tmp_path_factory):
    """The real ComfyUI server (main.py --cpu) with Pakati and the tiny-model node installed."""
    if HOST is None:
        missing(NO_HOST_REASON)
    from comfy_client import ComfyServer
    from ipadapter_pack import server_packs

    base = tmp_path_factory.mktemp("comfy_base")
    # cubiq's IP-Adapter pack where its source is found (tests/ipadapter_pack.py), for the templates that use it
    packs = {"pakati": REPO, "pakati_test_nodes": HOST_NODES / "pakati_test_nodes", **server_packs(HOST, base)}
    server = ComfyServer(HOST, base, packs=packs)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def fake_openai():
    """A local OpenAI-Images-shaped HTTP endpoint on 127.0.0.1 (tests/model_fakes.py)."""
    from model_fakes import FakeImagesServer

    with FakeImagesServer() as fake:
        yield fake


@pytest.fixture(scope="session")
def provider_comfy_server(tmp_path_factory, fake_openai):
    """A second real server whose environment points the OpenAI and Anthropic SDKs at ``fake_openai`` with a sentinel key.

    The shared ``comfy_server`` has no provider environment; the model nodes' templates and the
    key-leak test run here (OPENAI_BASE_URL is the SDK's own variable, so nothing is patched).
    """
    if HOST is None:
        missing(NO_HOST_REASON)
    from comfy_client import ComfyServer
    from model_fakes import SENTINEL_KEY

    base = tmp_path_factory.mktemp("comfy_providers")
    env = {
        "OPENAI_API_KEY": SENTINEL_KEY,
        "OPENAI_BASE_URL": fake_openai.url,
        "ANTHROPIC_API_KEY": SENTINEL_KEY,
        "ANTHROPIC_BASE_URL": fake_openai.url.removesuffix("/v1"),
    }
    server = ComfyServer(HOST, base, packs={"pakati": REPO, "pakati_test_nodes": HOST_NODES / "pakati_test_nodes"}, env=env)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def fe(comfy_server):
    """The real ComfyUI front end in headless Chromium, on the test server (one page per module)."""
    from browser import FrontEnd, require_browser

    require_browser()
    front = FrontEnd(comfy_server.url)
    try:
        front.open()
        yield front
    finally:
        front.close()


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server (initdb + pg_ctl on loopback) for the store tests; one per session."""
    from pg_server import PostgresServer, missing_reason

    reason = missing_reason()
    if reason:
        missing(reason)
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A fresh, empty database URL: a SQLite file, then a database on the real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'pakati.db'}"
    return request.getfixturevalue("postgres_server").new_database()
