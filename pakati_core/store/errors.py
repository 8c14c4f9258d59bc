"""Errors of the store: typed, and worded so a user knows what to change."""

from __future__ import annotations

from ..errors import PakatiError


class StoreError(PakatiError):
    """A store directory, database or record that cannot be used."""


class StoreUnavailableError(StoreError):
    """The database cannot be opened or written (read-only file system, full disk, server down)."""


class TemplateNameError(StoreError):
    """A template name that is empty, too long, or could reach outside the store."""


class TemplateNotFoundError(StoreError):
    """No template of that name for this user."""


class UnknownUserError(StoreError):
    """A request or prompt whose user the server does not know (under --multi-user): it reads and writes nothing."""
