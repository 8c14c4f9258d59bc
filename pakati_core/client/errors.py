"""Typed errors of the ComfyUI client.

Each says which server, and where ComfyUI named one, which node and what went wrong there, so
a failed task in a summary reads as a sentence rather than a stack trace.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import PakatiError

# ComfyUI's model folders (``models/<folder>/``) of the loader inputs that name a model file. An
# input of the same name whose folder depends on the loader is in MODEL_FOLDERS_BY_CLASS.
MODEL_INPUT_FOLDERS = {
    "ckpt_name": "checkpoints",
    "lora_name": "loras",
    "vae_name": "vae",
    "control_net_name": "controlnet",
    "unet_name": "diffusion_models",
    "clip_name": "text_encoders",
    "clip_name1": "text_encoders",
    "clip_name2": "text_encoders",
    "clip_name3": "text_encoders",
    "style_model_name": "style_models",
    "gligen_name": "gligen",
    "ipadapter_file": "ipadapter",
}
MODEL_FOLDERS_BY_CLASS = {
    "CLIPVisionLoader": {"clip_name": "clip_vision"},
    "UpscaleModelLoader": {"model_name": "upscale_models"},
    "unCLIPCheckpointLoader": {"ckpt_name": "checkpoints"},
}


@dataclass(frozen=True)
class MissingModel:
    """A model file a workflow names that the server does not have, read from ComfyUI's node errors.

    ``choices`` are the files the server offers for that input (ComfyUI sends the list only when it
    has at most 20 entries; ``None`` when it did not send it).
    """

    node_id: str
    class_type: str
    input: str
    value: str
    folder: str
    choices: tuple[str, ...] | None

    def fix(self) -> str:
        """One sentence: where the file goes, and the exact ``--set`` (or ``overrides``) that picks one the server has."""
        if self.choices:
            pick = self.choices[0]
            have = f"the server has {', '.join(self.choices[:5])}{', …' if len(self.choices) > 5 else ''}"
        else:
            pick = "YOUR_FILE.safetensors"
            have = "the server has none" if self.choices is not None else "see the choices in the node's list in ComfyUI"
        return (
            f"fix: put {self.value!r} into ComfyUI's models/{self.folder}/ folder and restart ComfyUI, or choose a file "
            f"the server has ({have}) with --set {self.node_id}.{self.input}={pick} "
            f"(Python: overrides={{{self.node_id!r}: {{{self.input!r}: {pick!r}}}}})"
        )


def missing_models(node_errors: dict) -> list[MissingModel]:
    """The model files ComfyUI's validation refused as not in its list, from /prompt's ``node_errors`` JSON."""
    found = []
    for node_id, info in sorted((node_errors if isinstance(node_errors, dict) else {}).items()):
        if not isinstance(info, dict):
            continue
        class_type = str(info.get("class_type", ""))
        errors = info.get("errors")
        for err in errors if isinstance(errors, list) else []:
            extra = err.get("extra_info") if isinstance(err, dict) else None
            inp = extra.get("input_name") if isinstance(extra, dict) else None
            if not isinstance(inp, str) or err.get("type") != "value_not_in_list":  # a str input_name means err is a dict
                continue
            folder = MODEL_FOLDERS_BY_CLASS.get(class_type, {}).get(inp) or MODEL_INPUT_FOLDERS.get(inp)
            if folder is None:
                continue
            config = extra.get("input_config")
            choices = None
            if isinstance(config, list) and config and isinstance(config[0], list):
                choices = tuple(str(c) for c in config[0])
            found.append(MissingModel(str(node_id), class_type, inp, str(extra.get("received_value")), folder, choices))
    return found


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
    """/prompt answered 400: ComfyUI's validation refused the prompt (``error``, ``node_errors``).

    ``missing_models`` lists the model files the server lacks (a checkpoint, LoRA, ...); the
    message ends with each one's fix: the folder the file belongs in and the ``--set`` that picks one.
    """

    def __init__(self, server: str, error: dict, node_errors: dict):
        self.error = error if isinstance(error, dict) else {"message": str(error)}
        self.node_errors = node_errors if isinstance(node_errors, dict) else {}
        self.missing_models = missing_models(self.node_errors)
        parts = [f"{self.error.get('message', 'prompt rejected')} {self.error.get('details', '')}".strip()]
        for node_id, info in sorted(self.node_errors.items()):
            errors = info.get("errors") if isinstance(info, dict) else None
            for err in (e for e in (errors if isinstance(errors, list) else []) if isinstance(e, dict)):
                extra = err.get("extra_info")
                inp = extra.get("input_name") if isinstance(extra, dict) else None
                where = f"node {node_id} ({info.get('class_type', '?')})" + (f" input '{inp}'" if inp else "")
                parts.append(f"{where}: {err.get('message', '')} {err.get('details', '')}".strip())
        parts += [m.fix() for m in self.missing_models]
        super().__init__("; ".join(parts), server)


class MissingNodeTypeError(ClientError):
    """The workflow uses node types this server does not have (``missing`` lists them)."""

    def __init__(self, server: str, missing: dict[str, list[str]]):
        self.missing = missing
        listing = ", ".join(f"{t} (node {', '.join(ids)})" for t, ids in sorted(missing.items()))
        super().__init__(f"node type(s) not installed on this server: {listing}", server)


class ExecutionError(ClientError):
    """A node raised while the prompt ran: ``node_id``, ``node_type`` and ComfyUI's message."""

    def __init__(self, server: str, prompt_id: str, node_id: str | None, node_type: str | None, message: str, exception_type: str = ""):
        self.prompt_id, self.node_id, self.node_type = prompt_id, node_id, node_type
        self.exception_message, self.exception_type = message, exception_type
        super().__init__(f"node {node_id} ({node_type}) failed: {exception_type + ': ' if exception_type else ''}{message.strip()}", server)


class ExecutionInterruptedError(ClientError):
    """The prompt was interrupted (ours on Ctrl-C, or someone pressed Cancel on the server)."""

    def __init__(self, server: str, prompt_id: str, node_id: str | None = None):
        self.prompt_id, self.node_id = prompt_id, node_id
        super().__init__(f"prompt {prompt_id} was interrupted" + (f" at node {node_id}" if node_id else ""), server)


def _rebuild(cls: type, args: tuple, state: dict) -> ClientError:
    err = cls.__new__(cls)
    Exception.__init__(err, *args)
    err.__dict__.update(state)
    return err


class WorkflowError(PakatiError):
    """The workflow file cannot take the substitution asked for (no canvas node, UI format, ...)."""
