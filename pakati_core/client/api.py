"""A small, typed client for one ComfyUI server's HTTP and WebSocket API.

HTTP goes through ``requests`` (timeouts, multipart upload), progress through ``websocket-client``
on ``/ws?clientId=...``. Completion is read from ``/history``: the WebSocket only makes progress
and completion arrive early, so a dropped socket or a missed message never loses a result.
Prompt ids are chosen here, before ``/prompt`` is called, so a POST retried after a dropped
connection is checked against the server's queue and history and never queued twice.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import queue as queue_mod
import re
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import requests
import websocket
from PIL import Image

from ..images import png_bytes
from ..retry import Retryable, RetryPolicy, call_with_retries
from .errors import (
    ClientError,
    ExecutionError,
    ExecutionInterruptedError,
    MissingNodeTypeError,
    PromptRejectedError,
    ServerUnavailableError,
    UnsafeOutputError,
)

log = logging.getLogger("pakati.client")


class PromptTimeoutError(ServerUnavailableError):
    """The prompt did not finish within the caller's time limit (the server may be stuck)."""


@dataclass(frozen=True)
class Event:
    """One message from ``/ws``: ``type`` is ComfyUI's (progress, executing, executed, ...)."""

    server: str
    type: str
    data: dict

    @property
    def prompt_id(self) -> str | None:
        return self.data.get("prompt_id")

    @property
    def node(self) -> str | None:
        return self.data.get("node", self.data.get("node_id"))


@dataclass(frozen=True)
class QueueState:
    """What ``/queue`` reports: prompt ids running now and waiting."""

    running: tuple[str, ...]
    pending: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.running) + len(self.pending)


@dataclass
class OutputImage:
    """One image a node saved or previewed, fetched through ``/view``."""

    node_id: str
    filename: str
    subfolder: str
    type: str
    data: bytes = field(repr=False)

    def array(self) -> np.ndarray:
        """The image as a uint8 HxWxC array."""
        with Image.open(io.BytesIO(self.data)) as im:
            return np.array(im)


@dataclass
class PromptResult:
    """A finished prompt: its history entry and the images its output nodes produced."""

    server: str
    prompt_id: str
    outputs: dict
    images: list[OutputImage]
    seconds: float

    def images_of(self, node_id: str) -> list[OutputImage]:
        return [im for im in self.images if im.node_id == str(node_id)]


def normalise_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ClientError(f"not a server URL: {url!r} (expected http://host:port)")
    return url


def encode_png(image: Any) -> bytes:
    """PNG bytes of a path, bytes, PIL image or array (uint8 grey/RGB/RGBA as it is, or float RGB in [0, 1];
    NaN/Inf refused with :class:`~pakati_core.errors.NonFiniteError`)."""
    if isinstance(image, (bytes, bytearray)):
        return bytes(image)
    if isinstance(image, (str, Path)):
        return Path(image).read_bytes()
    if isinstance(image, Image.Image):
        pil = image
    else:
        arr = np.asarray(image)
        if arr.ndim == 4 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.dtype != np.uint8:  # float in [0, 1] (alpha dropped): the core's one conversion and NaN policy
            return png_bytes(arr, field="image")
        pil = Image.fromarray(arr)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()


class _EventHub:
    """Reads ``/ws`` in a daemon thread and hands each prompt's events to its subscriber."""

    def __init__(self, client: "ComfyClient"):
        self.client = client
        self.subscribers: dict[str, queue_mod.Queue] = {}
        self.listeners: list[Callable[[Event], None]] = []
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.stop_flag = threading.Event()
        self.connected = threading.Event()

    def ensure_running(self) -> None:
        with self.lock:
            if self.thread is None or not self.thread.is_alive():
                self.stop_flag.clear()
                self.thread = threading.Thread(target=self._run, name=f"pakati-ws-{self.client.url}", daemon=True)
                self.thread.start()
        self.connected.wait(min(5.0, self.client.timeout))

    def subscribe(self, prompt_id: str) -> queue_mod.Queue:
        q: queue_mod.Queue = queue_mod.Queue()
        with self.lock:
            self.subscribers[prompt_id] = q
        return q

    def unsubscribe(self, prompt_id: str) -> None:
        with self.lock:
            self.subscribers.pop(prompt_id, None)

    def close(self) -> None:
        self.stop_flag.set()

    def _run(self) -> None:
        ws_url = self.client.url.replace("http", "ws", 1) + "/ws?" + urllib.parse.urlencode({"clientId": self.client.client_id})
        failures = 0
        while not self.stop_flag.is_set():
            sock = websocket.WebSocket()
            try:
                sock.connect(ws_url, timeout=self.client.timeout)
                sock.settimeout(1.0)
                failures = 0
                self.connected.set()
                while not self.stop_flag.is_set():
                    try:
                        msg = sock.recv()
                    except websocket.WebSocketTimeoutException:
                        continue
                    if isinstance(msg, bytes) or not msg:
                        continue  # binary previews
                    try:
                        parsed = json.loads(msg)
                    except json.JSONDecodeError:
                        continue
                    self._dispatch(Event(self.client.url, str(parsed.get("type")), parsed.get("data") or {}))
            except (OSError, websocket.WebSocketException) as e:
                self.connected.clear()
                failures += 1
                log.debug("ws %s: %s", ws_url, e)
                # Completion is polled on /history anyway; reconnect slowly while the server is away.
                self.stop_flag.wait(min(5.0, 0.5 * failures))
            finally:
                try:
                    sock.close()
                except Exception:  # noqa: BLE001 - closing a broken socket
                    pass

    def _dispatch(self, event: Event) -> None:
        pid = event.prompt_id
        with self.lock:
            q = self.subscribers.get(pid) if pid else None
            listeners = list(self.listeners)
        if q is not None:
            q.put(event)
        for fn in listeners:
            try:
                fn(event)
            except Exception:  # noqa: BLE001 - a listener must not kill the reader
                log.exception("event listener failed")


class ComfyClient:
    """One ComfyUI server. Thread-safe: several threads may queue and wait at once.

    ``timeout`` bounds each HTTP request; ``retries`` is how many times a request is repeated
    after a connection error, timeout or 5xx (with ``backoff`` × 2^k seconds between tries)
    before :class:`ServerUnavailableError`.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        client_id: str | None = None,
        poll_interval: float = 1.0,
    ):
        self.url = normalise_url(url)
        self.timeout, self.retries, self.backoff = float(timeout), int(retries), float(backoff)
        self.poll_interval = float(poll_interval)
        self.client_id = client_id or uuid.uuid4().hex
        self._local = threading.local()
        self._hub = _EventHub(self)
        self._node_types: frozenset[str] | None = None

    def __repr__(self) -> str:
        return f"ComfyClient({self.url!r})"

    # -- HTTP ---------------------------------------------------------------------------------
    @property
    def _session(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            s = self._local.session = requests.Session()
        return s

    def _request(self, method: str, path: str, *, retries: int | None = None, timeout: float | None = None, **kwargs) -> requests.Response:
        tries = (self.retries if retries is None else retries) + 1

        def attempt(_n: int) -> requests.Response:
            try:
                r = self._session.request(method, self.url + path, timeout=timeout or self.timeout, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as e:
                failed = ServerUnavailableError(f"{method} {path} failed after {tries} tries ({type(e).__name__})", self.url)
                raise Retryable(failed) from None
            if r.status_code >= 500:
                said = ClientError(f"{method} {path} answered {r.status_code}: {r.text[:300]}", self.url)
                raise Retryable(ServerUnavailableError(f"{method} {path} failed after {tries} tries ({said})", self.url))
            return r

        return call_with_retries(attempt, self._retry_policy(tries))[0]

    def _retry_policy(self, tries: int) -> RetryPolicy:
        """The client's retries: ``backoff * 2 ** n`` seconds apart, no jitter, no cap."""
        return RetryPolicy(max_calls=tries, backoff_s=self.backoff, cap_s=float("inf"), sleep=time.sleep, jitter=False)

    def _json(self, method: str, path: str, **kwargs) -> Any:
        r = self._request(method, path, **kwargs)
        if r.status_code != 200:
            raise ClientError(f"{method} {path} answered {r.status_code}: {r.text[:300]}", self.url)
        return r.json() if r.content else None

    def system_stats(self) -> dict:
        """``/system_stats``: ComfyUI version, Python, devices and their memory."""
        return self._json("GET", "/system_stats")

    def alive(self) -> bool:
        """True when ``/system_stats`` answers within one timeout (no retries)."""
        try:
            self._json("GET", "/system_stats", retries=0)
            return True
        except ClientError:
            return False

    def object_info(self, node_class: str | None = None) -> dict:
        """``/object_info`` (every node type) or ``/object_info/{node_class}``."""
        path = "/object_info" if node_class is None else "/object_info/" + urllib.parse.quote(node_class, safe="")
        return self._json("GET", path)

    def node_types(self, refresh: bool = False) -> frozenset[str]:
        """The node types the server has installed (cached after the first call)."""
        if self._node_types is None or refresh:
            self._node_types = frozenset(self.object_info())
        return self._node_types

    def missing_node_types(self, prompt: dict) -> dict[str, list[str]]:
        """Node types in ``prompt`` the server lacks, each with the node ids that use it."""
        have = self.node_types()
        missing: dict[str, list[str]] = {}
        for node_id, node in prompt.items():
            ct = node.get("class_type")
            if ct not in have:
                missing.setdefault(str(ct), []).append(str(node_id))
        return missing

    def check_node_types(self, prompt: dict) -> None:
        """Raise :class:`MissingNodeTypeError` if the server lacks a node type the prompt uses."""
        missing = self.missing_node_types(prompt)
        if missing:
            raise MissingNodeTypeError(self.url, missing)

    def queue(self) -> QueueState:
        """``/queue``: prompt ids running and pending (every client's, not only ours)."""
        q = self._json("GET", "/queue")
        return QueueState(tuple(item[1] for item in q.get("queue_running", [])), tuple(item[1] for item in q.get("queue_pending", [])))

    def queue_remaining(self) -> int:
        """Prompts running or waiting on the server (``GET /prompt``), cheaper than ``/queue``."""
        return int(self._json("GET", "/prompt", retries=0, timeout=min(self.timeout, 3.0))["exec_info"]["queue_remaining"])

    def history(self, prompt_id: str | None = None) -> dict:
        """``/history`` or ``/history/{prompt_id}`` (empty dict while the prompt has not finished)."""
        return self._json("GET", "/history" + (f"/{prompt_id}" if prompt_id else ""))

    def view(self, filename: str, subfolder: str = "", type: str = "output") -> bytes:
        """The bytes of an output, temp or input file through ``/view``."""
        r = self._request("GET", "/view", params={"filename": filename, "subfolder": subfolder, "type": type})
        if r.status_code != 200:
            raise ClientError(f"/view {subfolder}/{filename} ({type}) answered {r.status_code}", self.url)
        return r.content

    def upload_image(self, image: Any, name: str | None = None, subfolder: str = "pakati", overwrite: bool = True) -> str:
        """Upload to the server's input folder; returns the name ``LoadImage`` takes.

        Without ``name`` the file is named after its SHA-256, so uploading the same pixels
        twice (a retry, another task) writes one file.
        """
        data = encode_png(image)
        name = name or f"pakati_{hashlib.sha256(data).hexdigest()[:20]}.png"
        r = self._request(
            "POST",
            "/upload/image",
            files={"image": (name, data, "image/png")},
            data={"subfolder": subfolder, "type": "input", "overwrite": "true" if overwrite else "false"},
        )
        if r.status_code != 200:
            raise ClientError(f"/upload/image answered {r.status_code}: {r.text[:300]}", self.url)
        info = r.json()
        return f"{info['subfolder']}/{info['name']}" if info.get("subfolder") else info["name"]

    def interrupt(self, prompt_id: str | None = None) -> None:
        """Interrupt the running prompt (only if it is ``prompt_id``, when given)."""
        self._request("POST", "/interrupt", json={"prompt_id": prompt_id} if prompt_id else {}, retries=0)

    def delete_queued(self, prompt_ids: Iterable[str]) -> None:
        """Remove prompts that are still waiting in the queue."""
        self._request("POST", "/queue", json={"delete": list(prompt_ids)}, retries=0)

    def cancel(self, prompt_id: str) -> None:
        """Take a prompt off the queue, or interrupt it if it is running (best effort)."""
        try:
            self.delete_queued([prompt_id])
            self.interrupt(prompt_id)
        except ClientError as e:
            log.debug("cancel %s on %s: %s", prompt_id, self.url, e)

    # -- prompts --------------------------------------------------------------------------------
    def _known(self, prompt_id: str) -> bool:
        q = self.queue()
        return prompt_id in q.running or prompt_id in q.pending or prompt_id in self.history(prompt_id)

    def queue_prompt(self, prompt: dict, prompt_id: str | None = None, extra_data: dict | None = None) -> str:
        """POST ``/prompt``; returns the prompt id. Never queues the same prompt id twice.

        Raises :class:`MissingNodeTypeError` (with every missing type) or
        :class:`PromptRejectedError` (ComfyUI's node errors) when the server refuses it.
        """
        prompt_id = prompt_id or str(uuid.uuid4())
        body = {"prompt": prompt, "client_id": self.client_id, "prompt_id": prompt_id}
        if extra_data:
            body["extra_data"] = extra_data
        payload = json.dumps(body, allow_nan=False)
        tries = self.retries + 1

        def attempt(_n: int) -> str:
            try:
                r = self._session.post(
                    self.url + "/prompt", data=payload, headers={"Content-Type": "application/json"}, timeout=self.timeout
                )
            except (requests.ConnectionError, requests.Timeout) as e:
                # The request may have reached the server before the connection dropped.
                try:
                    if self._known(prompt_id):
                        return prompt_id
                except ClientError:
                    pass
                raise Retryable(ServerUnavailableError(f"POST /prompt failed after {tries} tries ({type(e).__name__})", self.url)) from None
            if r.status_code == 200:
                return r.json()["prompt_id"]
            if r.status_code == 400:
                try:
                    body = r.json()
                except ValueError:
                    body = {"error": {"message": r.text[:500]}}
                error = body.get("error") or {}
                if isinstance(error, dict) and "does not exist" in str(error.get("message", "")):
                    missing = self.missing_node_types(prompt)
                    if missing:
                        raise MissingNodeTypeError(self.url, missing)
                raise PromptRejectedError(self.url, error, body.get("node_errors") or {})
            failed = ServerUnavailableError(f"POST /prompt answered {r.status_code}: {r.text[:300]}", self.url)
            if r.status_code >= 500:
                raise Retryable(failed)
            raise failed

        return call_with_retries(attempt, self._retry_policy(tries))[0]

    def _finished(self, prompt_id: str) -> dict | None:
        entry = self.history(prompt_id).get(prompt_id)
        if not entry:
            return None
        status = entry.get("status") or {}
        if status.get("status_str") == "error":
            for name, data in status.get("messages", []):
                if name == "execution_interrupted":
                    raise ExecutionInterruptedError(self.url, prompt_id, data.get("node_id"))
                if name == "execution_error":
                    raise ExecutionError(
                        self.url,
                        prompt_id,
                        data.get("node_id"),
                        data.get("node_type"),
                        str(data.get("exception_message", "")),
                        str(data.get("exception_type", "")),
                    )
            raise ExecutionError(self.url, prompt_id, None, None, "the prompt ended with an error")
        if status.get("completed") or status.get("status_str") == "success":
            return entry
        return None

    def wait(
        self,
        prompt_id: str,
        *,
        timeout: float | None = None,
        on_event: Callable[[Event], None] | None = None,
        cancel: threading.Event | None = None,
        _events: queue_mod.Queue | None = None,
    ) -> dict:
        """Block until the prompt finishes; returns its ``/history`` entry.

        Progress events go to ``on_event``. Raises :class:`ExecutionError` (node id, type and
        message), :class:`ExecutionInterruptedError`, :class:`PromptTimeoutError` after
        ``timeout`` seconds, or :class:`ServerUnavailableError` when the server stops answering.
        When ``cancel`` is set the prompt is taken off the server and interrupted.
        """
        events = _events if _events is not None else self._hub.subscribe(prompt_id)
        self._hub.ensure_running()
        deadline = None if timeout is None else time.monotonic() + timeout
        next_poll = 0.0
        seen_end = False
        try:
            while True:
                if cancel is not None and cancel.is_set():
                    self.cancel(prompt_id)
                    raise ExecutionInterruptedError(self.url, prompt_id)
                now = time.monotonic()
                if now >= next_poll:
                    entry = self._finished(prompt_id)
                    if entry is not None:
                        if on_event is not None:
                            self._drain(events, on_event, seen_end)
                        return entry
                    next_poll = now + self.poll_interval
                if deadline is not None and now > deadline:
                    self.cancel(prompt_id)
                    raise PromptTimeoutError(f"prompt {prompt_id} did not finish within {timeout:.0f}s", self.url)
                try:
                    ev = events.get(timeout=min(0.25, max(0.01, next_poll - time.monotonic())))
                except queue_mod.Empty:
                    continue
                if on_event is not None:
                    on_event(ev)
                if _is_last(ev):
                    seen_end = True
                    next_poll = 0.0  # history is written already: read it now
        finally:
            self._hub.unsubscribe(prompt_id)

    def _drain(self, events: queue_mod.Queue, on_event: Callable[[Event], None], seen_end: bool, grace: float = 1.0) -> None:
        """History can be read before the last /ws messages arrive: pass those on too."""
        deadline = time.monotonic() + (0.0 if seen_end or not self._hub.connected.is_set() else grace)
        while True:
            try:
                ev = events.get(timeout=max(0.0, deadline - time.monotonic())) if not seen_end else events.get_nowait()
            except queue_mod.Empty:
                return
            on_event(ev)
            if _is_last(ev):
                seen_end = True

    def fetch_images(self, entry: dict, nodes: Iterable[str] | None = None) -> list[OutputImage]:
        """Every image listed in a history entry's outputs (optionally only some nodes), via /view.
        A node id or file name the client would not write safely is an UnsafeOutputError naming the server."""
        wanted = None if nodes is None else {str(n) for n in nodes}
        out = []
        for node_id, output in sorted((entry.get("outputs") or {}).items(), key=lambda kv: _node_sort_key(str(kv[0]))):
            if wanted is not None and node_id not in wanted:
                continue
            for img in (output.get("images", []) if isinstance(output, dict) else []) or []:
                if not isinstance(img, dict) or "filename" not in img:
                    continue
                check_output(node_id, img["filename"], self.url)
                data = self.view(img["filename"], img.get("subfolder", ""), img.get("type", "output"))
                out.append(OutputImage(node_id, img["filename"], img.get("subfolder", ""), img.get("type", "output"), data))
        return out

    def run(
        self,
        prompt: dict,
        *,
        timeout: float | None = None,
        on_event: Callable[[Event], None] | None = None,
        cancel: threading.Event | None = None,
        output_nodes: Iterable[str] | None = None,
        prompt_id: str | None = None,
    ) -> PromptResult:
        """Queue a prompt, follow it to the end and fetch its images."""
        t0 = time.monotonic()
        prompt_id = prompt_id or str(uuid.uuid4())
        events = self._hub.subscribe(prompt_id)  # before queueing: no event can be missed
        try:
            self._hub.ensure_running()
            self.queue_prompt(prompt, prompt_id)
        except BaseException:
            self._hub.unsubscribe(prompt_id)
            raise
        entry = self.wait(prompt_id, timeout=timeout, on_event=on_event, cancel=cancel, _events=events)
        images = self.fetch_images(entry, output_nodes)
        return PromptResult(self.url, prompt_id, entry.get("outputs") or {}, images, time.monotonic() - t0)

    def add_listener(self, fn: Callable[[Event], None]) -> None:
        """Call ``fn`` for every ``/ws`` message this client receives (any prompt)."""
        with self._hub.lock:
            self._hub.listeners.append(fn)
        self._hub.ensure_running()

    def close(self) -> None:
        self._hub.close()


def _is_last(ev: Event) -> bool:
    """ComfyUI's last message for a prompt: ``executing`` with no node (after success or error)."""
    return ev.type == "executing" and ev.data.get("node") is None


NODE_ID = re.compile(r"^[0-9A-Za-z_.:-]{1,64}$")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")


def check_output(node_id, filename, server: str | None) -> str:
    """The file's extension (lower case) when the node id and file name are safe to name a local file
    after; an UnsafeOutputError naming the server otherwise."""
    if not isinstance(node_id, str) or not NODE_ID.match(node_id):
        raise UnsafeOutputError(
            f"the history names an output node {str(node_id)[:80]!r}: node ids are 1-64 of [0-9A-Za-z_.:-]; nothing was written",
            server,
            "node_id",
        )
    ext = os.path.splitext(filename)[1].lower() if isinstance(filename, str) else ""
    if ext not in IMAGE_EXTENSIONS:
        raise UnsafeOutputError(
            f"node {node_id} names an output file {str(filename)[:80]!r}: only {', '.join(IMAGE_EXTENSIONS)} "
            "images are fetched; nothing was written",
            server,
            "filename",
        )
    return ext


def _node_sort_key(node_id: str):
    return (0, int(node_id), "") if node_id.isdigit() else (1, 0, node_id)
