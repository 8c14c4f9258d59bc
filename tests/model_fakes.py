"""Provider fakes at the HTTP level: responses shaped like the OpenAI and Anthropic APIs' JSON.

Used two ways: behind the real SDK clients through an ``httpx2.MockTransport`` (unit tests),
and as a real local HTTP endpoint that ComfyUI reaches through ``OPENAI_BASE_URL`` (server tests).
Nothing here imitates the SDKs; only the wire format of the providers' answers.
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
from PIL import Image

# A key that must never show up anywhere Pakati writes (tests scan for it).
SENTINEL_KEY = "sk-proj-PAKATI-SENTINEL-9c4e1f7a2b5d8e03"


def png_b64(rgb: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(rgb.astype(np.uint8), "RGB").save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def images_body(rgb: np.ndarray) -> dict:
    return {"created": 1700000000, "data": [{"b64_json": png_b64(rgb)}]}


def chat_body(content: str | None, refusal: str | None = None, finish_reason: str = "stop") -> dict:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-test",
        "choices": [{"index": 0, "finish_reason": finish_reason, "message": {"role": "assistant", "content": content, "refusal": refusal}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
    }


def anthropic_body(data: object = None, stop_reason: str = "end_turn", text: str | None = None, thinking: bool = False) -> dict:
    """A Messages answer as structured outputs give it: the JSON as a text block (``text`` sends other text instead),
    after a thinking block when ``thinking`` (current models think adaptively by default); no text block when both are None."""
    content: list[dict] = [{"type": "thinking", "thinking": "", "signature": "sig-1"}] if thinking else []
    body = text if text is not None else (json.dumps(data) if data is not None else None)
    if body is not None:
        content.append({"type": "text", "text": body})
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 10},
    }


def openai_error(status: int, message: str, code: str | None = None, type_: str = "invalid_request_error") -> dict:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def anthropic_error(type_: str, message: str) -> dict:
    return {"type": "error", "error": {"type": type_, "message": message}}


def fake_answers(request_text: str) -> dict:
    """A judge's answers to the numbered questions found in a request: 'yes' with score 0.75 to each."""
    import re

    questions = re.findall(r"(?:^|\\n|\n)(\d+)\. ", request_text)
    return {"answers": [{"question": f"q{n}", "verdict": "yes", "score": 0.75, "reason": "the fake judge sees it"} for n in questions]}


def key_leaks(server, texts: dict[str, str]) -> list[str]:
    """Where the sentinel key (or a fragment of it) appears: in ``texts`` (name -> text), the server's /history and
    /queue, its log, and every file under its base directory (user dir with settings and database, outputs, temp)."""
    places = dict(texts)
    places.update(
        {"/history": json.dumps(server.get_json("/history")), "/queue": json.dumps(server.get_json("/queue")), "server log": server.log()}
    )
    for path in server.base.rglob("*"):
        if path.is_file() and path.stat().st_size < 50_000_000:
            places[str(path)] = path.read_bytes().decode("latin-1")
    fragments = (SENTINEL_KEY, SENTINEL_KEY[:12], SENTINEL_KEY[-8:])
    return [where for where, text in places.items() if any(f in text for f in fragments)]


def multipart_files(content_type: str, body: bytes) -> dict[str, bytes | str]:
    """The parts of a multipart/form-data body, by field name (files as bytes, fields as text)."""
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\nMIME-Version: 1.0\r\n\r\n" + body
    )
    out: dict[str, bytes | str] = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        out[name] = payload if part.get_filename() else payload.decode()
    return out


def decode_png(data: bytes) -> np.ndarray:
    return np.array(Image.open(io.BytesIO(data)))


class FakeImagesServer:
    """A local OpenAI-Images-shaped endpoint: ``/v1/images/edits`` paints the whole picture one colour.

    It paints *everything* (not only the mask), as a provider that treats the mask as guidance
    may, so tests can show that Pakati's paste keeps the outside pixels. ``wrong_size`` makes it
    answer at another size than asked. It keeps every Authorization header it received.
    """

    def __init__(self, colour=(230, 20, 30), wrong_size: tuple[int, int] | None = None):
        self.colour, self.wrong_size = colour, wrong_size
        self.requests: list[dict] = []
        self.auth_headers: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                outer.auth_headers.append(self.headers.get("Authorization", ""))
                if self.path.endswith("/images/edits"):
                    parts = multipart_files(self.headers["Content-Type"], body)
                    image = decode_png(parts["image"])
                    mask = decode_png(parts["mask"])
                    outer.requests.append(
                        {
                            "path": self.path,
                            "size": parts.get("size"),
                            "model": parts.get("model"),
                            "image_shape": image.shape,
                            "mask_shape": mask.shape,
                            "prompt": parts.get("prompt"),
                            "mask_alpha": mask[..., 3] if mask.ndim == 3 and mask.shape[2] == 4 else None,
                        }
                    )
                    w, h = (int(v) for v in str(parts.get("size")).split("x"))
                    if "[401]" in str(parts.get("prompt")):  # answer like OpenAI does to a bad key: echoing it back
                        key = outer.auth_headers[-1].removeprefix("Bearer ")
                        return self._json(
                            401,
                            openai_error(
                                401,
                                f"Incorrect API key provided: {key}. You can find your API key at "
                                "https://platform.openai.com/account/api-keys.",
                                "invalid_api_key",
                            ),
                        )
                elif self.path.endswith("/chat/completions") or self.path.endswith("/messages"):
                    req = json.loads(body)
                    answers = fake_answers(json.dumps(req.get("messages")))
                    outer.requests.append(
                        {
                            "path": self.path,
                            "model": req.get("model"),
                            "questions": len(answers["answers"]),
                            "format": ((req.get("output_config") or {}).get("format") or req.get("response_format") or {}).get("type"),
                            "forced_tool": "tool_choice" in req,
                            "sampling": sorted(k for k in ("temperature", "top_p", "top_k") if k in req),
                        }
                    )
                    if self.path.endswith("/messages"):
                        return self._json(200, anthropic_body(answers, thinking=True))
                    return self._json(200, chat_body(json.dumps(answers)))
                elif self.path.endswith("/images/generations"):
                    req = json.loads(body)
                    outer.requests.append({"path": self.path, **{k: req.get(k) for k in ("size", "model", "prompt")}})
                    w, h = (int(v) for v in req["size"].split("x"))
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                if outer.wrong_size:
                    w, h = outer.wrong_size
                if "[wrong-size]" in str(outer.requests[-1].get("prompt")):  # a provider answering at another size
                    w, h = w * 3 // 4 + 3, h // 2 + 5
                rgb = np.zeros((h, w, 3), np.uint8)
                rgb[...] = outer.colour
                self._json(200, images_body(rgb))

            def _json(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "FakeImagesServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class FakeLocalChatServer:
    """A local OpenAI-compatible chat-completions endpoint, as Ollama / llama.cpp / vLLM / LM Studio serve one.

    ``mode``: "schema" honours ``response_format`` json_schema; "json_mode" answers 400 to json_schema and
    honours json_object; "prose" ignores ``response_format`` and answers prose around a fenced JSON block;
    "prose_only" answers prose with no JSON at all. ``answer(messages)`` gives the JSON object to send (a plan
    for a planner request, yes-answers for a judge request). Every request is kept (path, model, format, auth).
    """

    def __init__(self, mode: str, answer):
        self.mode, self.answer = mode, answer
        self.requests: list[dict] = []

    def __enter__(self) -> "FakeLocalChatServer":
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                fmt = (body.get("response_format") or {}).get("type")
                outer.requests.append(
                    {
                        "path": self.path,
                        "model": body.get("model"),
                        "format": fmt,
                        "auth": self.headers.get("Authorization"),
                        "messages": len(body.get("messages", [])),
                    }
                )
                if not self.path.endswith("/chat/completions"):
                    return self._json(404, openai_error(404, "not found"))
                if outer.mode == "json_mode" and fmt == "json_schema":
                    return self._json(400, openai_error(400, "response_format json_schema is not supported by this server"))
                data = json.dumps(outer.answer(body.get("messages", [])))
                if outer.mode in ("schema", "json_mode"):
                    return self._json(200, chat_body(data))
                if outer.mode == "prose":
                    text = f"Sure! Here is what you asked for:\n```json\n{data}\n```\nLet me know if you need more."
                    return self._json(200, chat_body(text))
                return self._json(200, chat_body("I think the picture should show the things in a pleasant arrangement."))

            def _json(self, status: int, body: dict) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
