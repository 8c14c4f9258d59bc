"""Typed errors of the ComfyUI client.

Each says which server, and where ComfyUI named one, which node and what went wrong there, so
a failed task in a summary reads as a sentence rather than a stack trace.
"""
from __future__ import annotations

from ..errors import PakatiError


class ClientError(PakatiError):
    """Base of everything the client raises; ``server`` is the base URL involved."""

    def __init__(self, message: str, server: str | None = None, field: str | None = None):
        self.server = server
        super().__init__(f"{server}: {message}" if server else message, field)

    def __reduce__(self):
        # Subclasses take other constructor arguments: rebuild from the message and attributes,
        # so the error crosses process boundaries (Ray actors) intact.
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class ServerUnavailableError(ClientError):
    """The server refused the connection, timed out or answered 5xx after every retry.

    The dispatcher re-queues the task on another server when it sees this.
    """


class UnsafeOutputError(ClientError):
    """The server named an output the client will not fetch or write: a node id outside
    ``[0-9A-Za-z_.:-]{1,64}``, a file that is not .png/.jpg/.jpeg/.webp, or a path that would
    land outside the output folder."""


class PromptRejectedError(ClientError):
    """/prompt answered 400: ComfyUI's validation refused the prompt (``error``, ``node_errors``)."""

    def __init__(self, server: str, error: dict, node_errors: dict):
        self.error = error if isinstance(error, dict) else {"message": str(error)}
        self.node_errors = node_errors or {}
        parts = [f"{self.error.get('message', 'prompt rejected')} {self.error.get('details', '')}".strip()]
        for node_id, info in sorted(self.node_errors.items()):
            for err in info.get("errors", []):
                inp = (err.get("extra_info") or {}).get("input_name")
                where = f"node {node_id} ({info.get('class_type', '?')})" + (f" input '{inp}'" if inp else "")
                parts.append(f"{where}: {err.get('message', '')} {err.get('details', '')}".strip())
        super().__init__("; ".join(parts), server)


class MissingNodeTypeError(ClientError):
    """The workflow uses node types this server does not have (``missing`` lists them)."""

    def __init__(self, server: str, missing: dict[str, list[str]]):
        self.missing = missing
        listing = ", ".join(f"{t} (node {', '.join(ids)})" for t, ids in sorted(missing.items()))
        super().__init__(f"node type(s) not installed on this server: {listing}", server)


class ExecutionError(ClientError):
    """A node raised while the prompt ran: ``node_id``, ``node_type`` and ComfyUI's message."""

    def __init__(self, server: str, prompt_id: str, node_id: str | None, node_type: str | None,
                 message: str, exception_type: str = ""):
        self.prompt_id, self.node_id, self.node_type = prompt_id, node_id, node_type
        self.exception_message, self.exception_type = message, exception_type
        super().__init__(f"node {node_id} ({node_type}) failed: {exception_type + ': ' if exception_type else ''}{message.strip()}", server)


class ExecutionInterruptedError(ClientError):
    """The prompt was interrupted (ours on Ctrl-C, or someone pressed Cancel on the server)."""

    def __init__(self, server: str, prompt_id: str, node_id: str | None = None):
        self.prompt_id, self.node_id = prompt_id, node_id
        super().__init__(f"prompt {prompt_id} was interrupted" + (f" at node {node_id}" if node_id else ""), server)


def _rebuild(cls: type, args: tuple, state: dict) -> "ClientError":
    err = cls.__new__(cls)
    Exception.__init__(err, *args)
    err.__dict__.update(state)
    return err


class WorkflowError(PakatiError):
    """The workflow file cannot take the substitution asked for (no canvas node, UI format, ...)."""
