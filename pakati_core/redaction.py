"""Secrets in text: the one pattern for what looks like a key, a token or a credential field.

Used wherever text leaves the process or is kept: provider error messages (redacted before
they are raised or logged), workflow inputs recorded in the history (secret-looking fields and
values left out), stored prompts. One pattern, so what one place hides the others hide too.
"""

from __future__ import annotations

import re
from typing import Any

# Field names that hold secrets (an input named ``api_key``, a header ``Authorization``).
SECRET_NAME = re.compile(r"(api[_-]?key|secret|token|password|authori[sz]ation|credential|cookie)", re.IGNORECASE)
# Values shaped like a key or a bearer token, wherever they stand in the text; and what providers
# echo back about a key ("Incorrect API key provided: sk-...", "x-api-key: ...").
SECRET_VALUE = re.compile(
    r"((?<![A-Za-z0-9])(?:sk-|sk_|xai-|AIza)[A-Za-z0-9_\-*.]{4,}|Bearer\s+\S+|Incorrect API key provided:\s*\S+"
    r"|x-api-key[\"']?\s*[:=]\s*\S+)",
    re.IGNORECASE,
)
# Text that starts with a key's prefix, however short what follows (a truncated or masked key).
SECRET_PREFIX = re.compile(r"^(sk-|sk_|Bearer\s|xai-|AIza)", re.IGNORECASE)
REDACTED = "[redacted]"


def is_secret_name(name: Any) -> bool:
    """True for a field name that holds a secret (``api_key``, ``token``, ``Authorization``...)."""
    return bool(SECRET_NAME.search(str(name)))


def looks_secret(value: Any) -> bool:
    """True for text that carries something shaped like an API key or bearer token, or starts with a key's prefix."""
    return isinstance(value, str) and bool(SECRET_VALUE.search(value) or SECRET_PREFIX.match(value))


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with the given secrets and anything shaped like a key (``sk-...``, ``Bearer ...``) removed."""
    out = str(text)
    for s in secrets:
        if s:
            out = out.replace(s, REDACTED)
            for part in (s[:12], s[-8:]):  # providers echo masked keys: first and last characters
                if len(part) >= 6:
                    out = out.replace(part, REDACTED)
    return SECRET_VALUE.sub(REDACTED, out)
