"""Ray backend: one Ray actor per ComfyUI server, Ray's restarts and retries for failed workers.

``pip install pakati[ray]``. Against a Ray cluster (``address="auto"`` or ``ray://...``) each
actor can be pinned to the node that runs its ComfyUI server with ``resources`` (for example a
custom resource per machine); with no address a local Ray instance is started, which is how the
tests run it. The :class:`~.dispatch.Dispatcher` still chooses the server with the shortest
queue and moves a dead server's tasks to the others; Ray restarts an actor whose process died
and re-runs the task it was running (``max_restarts``, ``max_task_retries``).
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import threading
from pathlib import Path
from typing import Any, Sequence

from .api import ComfyClient
from .dispatch import PromptTask, execute_task
from .errors import ClientError


class ServerActor:
    """Holds one server's :class:`ComfyClient`; runs tasks there (a threaded actor)."""

    def __init__(self, url: str, client_options: dict | None = None):
        self.client = ComfyClient(url, **(client_options or {}))
        self.cancel_event = threading.Event()

    def url(self) -> str:
        return self.client.url

    def execute(self, task: PromptTask, timeout: float | None = None):
        return execute_task(self.client, task, timeout=timeout, cancel=self.cancel_event)

    def queue_remaining(self) -> int:
        return self.client.queue_remaining()

    def cancel(self) -> None:
        """Cancel every prompt this actor is running (Ctrl-C on the driver)."""
        self.cancel_event.set()


class RayBackend:
    """Submits each task to its server's actor; results come back as futures."""

    name = "ray"

    def __init__(
        self,
        urls: Sequence[str],
        *,
        max_inflight: int = 1,
        client_options: dict | None = None,
        address: str | None = None,
        max_restarts: int = 2,
        max_task_retries: int = 2,
        resources: Sequence[dict | None] | None = None,
        init_options: dict | None = None,
        probe_timeout: float = 10.0,
    ):
        try:
            import ray
        except ImportError:
            raise ClientError("the Ray backend needs Ray: pip install 'pakati[ray]' (or pip install ray)") from None
        self.ray = ray
        self.probe_timeout = probe_timeout
        self.started_ray = False
        if not ray.is_initialized():
            opts = {"include_dashboard": False, "log_to_driver": False, "ignore_reinit_error": True}
            if address is None:
                # A local instance: make this checkout importable in the worker processes.
                root = str(Path(__file__).resolve().parents[2])
                path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
                opts["runtime_env"] = {"env_vars": {"PYTHONPATH": path}}
            else:
                opts["address"] = address
            opts.update(init_options or {})
            ray.init(**opts)
            self.started_ray = True
        actor_cls = ray.remote(ServerActor)
        self.actors = []
        for i, url in enumerate(urls):
            opts: dict[str, Any] = {
                "max_restarts": max_restarts,
                "max_task_retries": max_task_retries,
                "max_concurrency": max_inflight + 2,
                "num_cpus": 0,
            }
            if resources and resources[i]:
                opts["resources"] = dict(resources[i])
            self.actors.append(actor_cls.options(**opts).remote(url, client_options))
        self._watching: set[int] = set()

    def submit(self, index: int, task: PromptTask, timeout: float | None, on_event, cancel: threading.Event) -> cf.Future:
        if id(cancel) not in self._watching:
            self._watching.add(id(cancel))
            threading.Thread(target=self._forward_cancel, args=(cancel,), daemon=True).start()
        return self.actors[index].execute.remote(task, timeout).future()

    def _forward_cancel(self, cancel: threading.Event) -> None:
        cancel.wait()
        for a in self.actors:
            try:
                a.cancel.remote()
            except Exception:  # noqa: BLE001 - an actor that is gone has nothing to cancel
                pass

    def queue_length(self, index: int) -> int:
        return int(self.ray.get(self.actors[index].queue_remaining.remote(), timeout=self.probe_timeout))

    def close(self) -> None:
        for a in self.actors:
            try:
                self.ray.kill(a)
            except Exception:  # noqa: BLE001
                pass
        self.actors = []
        if self.started_ray:
            self.ray.shutdown()
