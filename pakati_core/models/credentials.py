"""Where API keys come from: the environment, or a 0600 key file under ComfyUI's user directory.

A node offers a credential *name*, never a key. The name ``default`` reads the SDK's own
variable (``OPENAI_API_KEY`` / ``ANTHROPIC_API_KEY``), then Pakati's
(``PAKATI_API_KEY_OPENAI`` / ``PAKATI_API_KEY_ANTHROPIC``), then the key file. Another name,
say ``team``, reads ``PAKATI_API_KEY_OPENAI_TEAM``, then the key file. The key file is JSON,
``{"openai": {"default": "...", "team": "..."}, "anthropic": "..."}``, at ``$PAKATI_KEY_FILE``
or ``<user dir>/pakati/keys.json``, and is ignored unless only its owner can read it.
Keys are returned to the caller and never logged, stored or put into error text.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

from .errors import KeyFileInsecureError, KeyMissingError

PROVIDERS = ("openai", "anthropic")
SDK_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
DEFAULT_CREDENTIAL = "default"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")

_user_dir: Path | None = None


def set_user_dir(path: str | Path | None) -> None:
    """Tell the core where ComfyUI's user directory is (the nodes call this; the core never imports ComfyUI)."""
    global _user_dir
    _user_dir = Path(path) if path else None


def user_dir() -> Path | None:
    env = os.environ.get("PAKATI_USER_DIR")
    return Path(env) if env else _user_dir


def key_file_path() -> Path | None:
    env = os.environ.get("PAKATI_KEY_FILE")
    if env:
        return Path(env).expanduser()
    base = user_dir()
    return base / "pakati" / "keys.json" if base else None


def normalise_name(credential_name: str | None) -> str:
    """The credential name to use; bad names are rejected (they become env var names)."""
    name = (credential_name or "").strip() or DEFAULT_CREDENTIAL
    if not _NAME.match(name):
        raise KeyMissingError(
            f"credential name {name!r} is not valid: use letters, digits, '-' or '_' (at most 64), e.g. 'default'",
            provider="?",
            field="credential",
        )
    return name


def env_names(provider: str, credential_name: str | None = None) -> list[str]:
    """The environment variables read for ``provider`` and ``credential_name``, in order."""
    name = normalise_name(credential_name)
    up = provider.upper()
    if name == DEFAULT_CREDENTIAL:
        return [SDK_ENV[provider], f"PAKATI_API_KEY_{up}"]
    return [f"PAKATI_API_KEY_{up}_{name.upper().replace('-', '_')}"]


def _from_key_file(provider: str, name: str) -> str | None:
    path = key_file_path()
    if path is None or not path.is_file():
        return None
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise KeyFileInsecureError(
            f"the key file {path} can be read by other users (mode {mode:04o}); run: chmod 600 {path}",
            provider=provider,
            field="credential",
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise KeyMissingError(
            f"the key file {path} is not valid JSON ({type(e).__name__} at line {getattr(e, 'lineno', '?')})",
            provider=provider,
            field="credential",
        ) from None
    entry = data.get(provider) if isinstance(data, dict) else None
    if isinstance(entry, str):
        return entry if name == DEFAULT_CREDENTIAL else None
    if isinstance(entry, dict):
        value = entry.get(name)
        return value if isinstance(value, str) else None
    return None


def resolve_key(provider: str, credential_name: str | None = None) -> str:
    """The key for ``provider`` under ``credential_name``; ``KeyMissingError`` says where to put one."""
    if provider not in PROVIDERS:
        raise KeyMissingError(f"unknown provider {provider!r}; expected one of {', '.join(PROVIDERS)}", provider=provider, field="provider")
    name = normalise_name(credential_name)
    names = env_names(provider, name)
    for var in names:
        value = os.environ.get(var, "").strip()
        if value:
            return value
    value = _from_key_file(provider, name)
    if value and value.strip():
        return value.strip()
    path = key_file_path()
    where = f' or under "{provider}" -> "{name}" in the key file {path} (chmod 600)' if path else ""
    raise KeyMissingError(
        f"no key for provider {provider} (credential name '{name}'): set {' or '.join(names)}{where}",
        provider=provider,
        field="credential",
    )


def has_key(provider: str, credential_name: str | None = None) -> bool:
    try:
        resolve_key(provider, credential_name)
    except KeyMissingError:
        return False
    return True
