"""Pakati's HTTP routes on the ComfyUI server (history and templates), and the hooks that tell the
store which user a request or a queued prompt belongs to.

Installed through ``server.PromptServer.instance`` when the pack is loaded by a running server;
nothing happens where there is none (tests that import the pack in-process), and pakati_core
never sees any of it. Every route answers only with the calling user's rows (ComfyUI's
``comfy-user`` header under ``--multi-user``; "default" otherwise). Database work runs off the
event loop and waits at most a second for a lock (then 503 with a plain message; the detail is
logged); bodies are strict JSON of at most 2 MB.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import sys
import urllib.parse

from aiohttp import web

from ..pakati_core.store import StoreError, StoreUnavailableError, TemplateNotFoundError, UnknownUserError
from .persistence import REQUEST_WAIT_S, claim_prompt_id, forget_prompt, pakati_store, request_user

log = logging.getLogger("pakati")
_installed = False
BODY_MAX = 2 * 1024 * 1024  # a template document with its thumbnail is far smaller
UNAVAILABLE = "Pakati's database cannot be used right now (it is busy, locked or unreachable); the server log says why"
_claimed: contextvars.ContextVar[list | None] = contextvars.ContextVar("pakati_claimed_prompt_ids", default=None)


def _error(status: int, message: str, field: str | None = None) -> web.Response:
    return web.json_response({"error": message, "field": field}, status=status)


def _user(request: web.Request, server) -> str:
    """The caller's user id as ComfyUI decides it; an unknown user is refused, never defaulted."""
    try:
        return server.user_manager.get_request_user_id(request)
    except KeyError as e:
        raise web.HTTPForbidden(text=json.dumps({"error": str(e).strip("'\"")[:200]}), content_type="application/json") from e


def _int(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"{name} must be an integer, got {raw[:40]!r}"}), content_type="application/json"
        ) from None
    if not lo <= value <= hi:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"{name} must be in [{lo}, {hi}], got {value}"}), content_type="application/json"
        )
    return value


def _store_error(e: StoreError, status: int = 400) -> web.Response:
    """A StoreError as an answer. A database that cannot be used is a 503 with a plain message: its
    detail (file path, server user and host, SQL text) goes to the log, never to the caller."""
    if isinstance(e, StoreUnavailableError) or e.field in ("database", "url", "secret") or status >= 500:
        log.error("Pakati: a request could not use the database: %s", e)
        return _error(503, UNAVAILABLE, "database")
    if isinstance(e, UnknownUserError):
        return _error(403, str(e), "user")
    return _error(status, str(e), e.field)


async def _in_thread(request_user_id: str, work):
    """Run ``work(store)`` off the event loop on the caller's store, which waits at most REQUEST_WAIT_S for a lock."""
    return await asyncio.to_thread(lambda: work(pakati_store(request_user_id, wait_s=REQUEST_WAIT_S)))


def content_disposition(name: str, suffix: str) -> str:
    """``attachment`` with an ASCII fallback ``filename`` and the exact name as RFC 5987 ``filename*``."""
    fallback = "".join(c if c.isascii() and (c.isalnum() or c in " -_.(),") else "_" for c in name).strip() or "template"
    return f"attachment; filename=\"{fallback}{suffix}\"; filename*=UTF-8''{urllib.parse.quote(name + suffix, safe='')}"


async def _json_body(request: web.Request):
    """The body as strict JSON, at most BODY_MAX bytes; an HTTP error (400/413) otherwise."""
    if request.content_length is not None and request.content_length > BODY_MAX:
        raise web.HTTPRequestEntityTooLarge(
            max_size=BODY_MAX,
            actual_size=request.content_length,
            text=json.dumps({"error": f"the body is larger than {BODY_MAX} bytes"}),
            content_type="application/json",
        )
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(65536):
        size += len(chunk)
        if size > BODY_MAX:
            raise web.HTTPRequestEntityTooLarge(
                max_size=BODY_MAX,
                actual_size=size,
                text=json.dumps({"error": f"the body is larger than {BODY_MAX} bytes"}),
                content_type="application/json",
            )
        chunks.append(chunk)

    def bad(message: str) -> web.HTTPBadRequest:
        return web.HTTPBadRequest(text=json.dumps({"error": message, "field": "body"}), content_type="application/json")

    try:
        text = b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError as e:
        raise bad(f"the body is not UTF-8 (byte {e.start})") from e
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError as e:
        raise bad("the body is JSON nested too deeply") from e
    except ValueError as e:
        raise bad(f"the body is not strict JSON: {str(e)[:200]}") from e


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def install(server) -> None:
    """Register the routes, the request-user middleware and the prompt-user handler (once)."""
    global _installed
    if _installed:
        return
    _installed = True
    routes = server.routes

    @web.middleware
    async def pakati_user_middleware(request: web.Request, handler):
        user = None
        try:
            user = server.user_manager.get_request_user_id(request)
        except (KeyError, AttributeError):
            pass  # an unknown user: ComfyUI's own handlers refuse it; ours do too (see _user), and nodes act for nobody
        token = request_user.set(user)
        claimed = _claimed.set([])
        ok = False
        try:
            response = await handler(request)
            ok = response.status < 400
            return response
        finally:
            if not ok:  # ComfyUI refused the prompt: its id maps to nobody
                for pid in _claimed.get() or []:
                    forget_prompt(pid)
            _claimed.reset(claimed)
            request_user.reset(token)

    try:
        server.app.middlewares.append(pakati_user_middleware)
    except RuntimeError as e:  # the application was already frozen: history falls back to the default user
        log.warning("Pakati: could not add the user middleware (%s); under --multi-user every run is recorded as 'default'", e)

    def live_prompt_ids() -> set[str]:
        running, queued = server.prompt_queue.get_current_queue_volatile()
        return {item[1] for item in [*running, *queued]}

    def on_prompt(json_data: dict) -> dict:
        user = request_user.get()
        if user and isinstance(json_data, dict) and "prompt" in json_data:
            pid = claim_prompt_id(json_data, user, live_prompt_ids)  # never overwrites: a taken or oversized id becomes a fresh uuid4
            claimed = _claimed.get()
            if claimed is not None:
                claimed.append(pid)
        return json_data

    server.add_on_prompt_handler(on_prompt)

    @routes.get("/pakati/history")
    async def get_history(request: web.Request) -> web.Response:
        """The caller's runs, newest first: ?limit=1..200 (default 50)&offset=0.."""
        user = _user(request, server)
        limit = _int(request, "limit", 50, 1, 200)
        offset = _int(request, "offset", 0, 0, 10**9)
        try:
            runs, total = await _in_thread(user, lambda store: (store.runs.newest(limit, offset), store.runs.count()))
        except StoreError as e:
            return _store_error(e, 503)
        return web.json_response({"user": user, "total": total, "limit": limit, "offset": offset, "runs": runs})

    @routes.get("/pakati/templates")
    async def get_templates(request: web.Request) -> web.Response:
        user = _user(request, server)
        try:
            return web.json_response({"templates": await _in_thread(user, lambda store: store.templates.names())})
        except StoreError as e:
            return _store_error(e, 503)

    @routes.get("/pakati/templates/export")
    async def export_template(request: web.Request) -> web.Response:
        """?name=...: the template as a JSON document to share (import it with POST /pakati/templates/import)."""
        user = _user(request, server)
        try:
            doc = await _in_thread(user, lambda store: store.templates.export(request.query.get("name", "")))
        except TemplateNotFoundError as e:
            return _store_error(e, 404)
        except StoreError as e:
            return _store_error(e)
        return web.Response(
            text=json.dumps(doc, indent=1, allow_nan=False),
            content_type="application/json",
            headers={"Content-Disposition": content_disposition(doc["name"], ".pakati-template.json")},
        )

    @routes.post("/pakati/templates/import")
    async def import_template(request: web.Request) -> web.Response:
        """Body: a document from /pakati/templates/export (at most 2 MB); ?overwrite=1 replaces a template of the same name."""
        user = _user(request, server)
        doc = await _json_body(request)
        overwrite = request.query.get("overwrite") in ("1", "true")
        try:
            saved = await _in_thread(user, lambda store: store.templates.import_document(doc, overwrite=overwrite))
        except StoreError as e:
            return _store_error(e)
        return web.json_response({"name": saved["name"]})


def install_if_server() -> None:
    """Install on the running ComfyUI server, if this process has one (never imports ComfyUI's server)."""
    comfy_server = sys.modules.get("server")
    instance = getattr(getattr(comfy_server, "PromptServer", None), "instance", None)
    if instance is not None:
        install(instance)
