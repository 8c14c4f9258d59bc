"""Pakati's HTTP routes on the ComfyUI server (history and templates), and the hooks that tell the
store which user a request or a queued prompt belongs to.

Installed through ``server.PromptServer.instance`` when the pack is loaded by a running server;
nothing happens where there is none (tests that import the pack in-process), and pakati_core
never sees any of it. Every route answers only with the calling user's rows (ComfyUI's
``comfy-user`` header under ``--multi-user``; "default" otherwise).
"""
from __future__ import annotations

import asyncio
import json
import logging
import sys
import uuid

from aiohttp import web

from ..pakati_core.store import StoreError, TemplateNotFoundError
from .persistence import pakati_store, remember_prompt_user, request_user

log = logging.getLogger("pakati")
_installed = False


def _user(request: web.Request, server) -> str:
    """The caller's user id as ComfyUI decides it; an unknown user is refused, never defaulted."""
    try:
        return server.user_manager.get_request_user_id(request)
    except KeyError as e:
        raise web.HTTPForbidden(text=json.dumps({"error": str(e).strip("'\"")}), content_type="application/json") from e


def _int(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=json.dumps({"error": f"{name} must be an integer, got {raw!r}"}), content_type="application/json")
    if not lo <= value <= hi:
        raise web.HTTPBadRequest(text=json.dumps({"error": f"{name} must be in [{lo}, {hi}], got {value}"}), content_type="application/json")
    return value


def _store_error(e: StoreError, status: int = 400) -> web.Response:
    return web.json_response({"error": str(e), "field": e.field}, status=status)


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
            pass  # an unknown user: ComfyUI's own handlers refuse it; ours do too (see _user)
        token = request_user.set(user)
        try:
            return await handler(request)
        finally:
            request_user.reset(token)

    try:
        server.app.middlewares.append(pakati_user_middleware)
    except RuntimeError as e:  # the application was already frozen: history falls back to the default user
        log.warning("Pakati: could not add the user middleware (%s); under --multi-user every run is recorded as 'default'", e)

    def on_prompt(json_data: dict) -> dict:
        user = request_user.get()
        if user and isinstance(json_data, dict) and "prompt" in json_data:
            prompt_id = str(json_data.get("prompt_id") or uuid.uuid4())
            json_data["prompt_id"] = prompt_id  # ComfyUI uses it as given
            remember_prompt_user(prompt_id, user)
        return json_data

    server.add_on_prompt_handler(on_prompt)

    @routes.get("/pakati/history")
    async def get_history(request: web.Request) -> web.Response:
        """The caller's runs, newest first: ?limit=1..200 (default 50)&offset=0.."""
        user = _user(request, server)
        limit = _int(request, "limit", 50, 1, 200)
        offset = _int(request, "offset", 0, 0, 10**9)
        try:
            def read() -> tuple[list[dict], int]:
                store = pakati_store(user)
                return store.runs.newest(limit, offset), store.runs.count()

            runs, total = await asyncio.to_thread(read)
        except StoreError as e:
            return _store_error(e, 503)
        return web.json_response({"user": user, "total": total, "limit": limit, "offset": offset, "runs": runs})

    @routes.get("/pakati/templates")
    async def get_templates(request: web.Request) -> web.Response:
        user = _user(request, server)
        try:
            return web.json_response({"templates": pakati_store(user).templates.names()})
        except StoreError as e:
            return _store_error(e, 503)

    @routes.get("/pakati/templates/export")
    async def export_template(request: web.Request) -> web.Response:
        """?name=...: the template as a JSON document to share (import it with POST /pakati/templates/import)."""
        user = _user(request, server)
        try:
            doc = pakati_store(user).templates.export(request.query.get("name", ""))
        except TemplateNotFoundError as e:
            return _store_error(e, 404)
        except StoreError as e:
            return _store_error(e)
        return web.Response(text=json.dumps(doc, indent=1, allow_nan=False), content_type="application/json",
                            headers={"Content-Disposition": f'attachment; filename="{doc["name"]}.pakati-template.json"'})

    @routes.post("/pakati/templates/import")
    async def import_template(request: web.Request) -> web.Response:
        """Body: a document from /pakati/templates/export; ?overwrite=1 replaces a template of the same name."""
        user = _user(request, server)
        try:
            doc = await request.json()
        except ValueError as e:
            return web.json_response({"error": f"the body is not JSON: {e}"}, status=400)
        try:
            saved = pakati_store(user).templates.import_document(doc, overwrite=request.query.get("overwrite") in ("1", "true"))
        except StoreError as e:
            return _store_error(e)
        return web.json_response({"name": saved["name"]})


def install_if_server() -> None:
    """Install on the running ComfyUI server, if this process has one (never imports ComfyUI's server)."""
    comfy_server = sys.modules.get("server")
    instance = getattr(getattr(comfy_server, "PromptServer", None), "instance", None)
    if instance is not None:
        install(instance)
