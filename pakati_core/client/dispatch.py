"""Scale-out: independent tasks spread over several ComfyUI servers.

The scheduler runs in the caller's thread. Each task goes to the live server with the shortest
queue (the server's own ``queue_remaining``, which counts other users' prompts too, or our
prompts in flight there if more); a task is run by a backend (a thread pool here, Ray actors in
:mod:`.ray_backend`). A task has at most one live attempt at a time and its result is recorded
once, so a server that dies or stops answering has its tasks re-queued on the others with no
task lost and no result duplicated. Ctrl-C takes our prompts off every queue and interrupts the
running ones.
"""

from __future__ import annotations

import concurrent.futures as cf
import copy
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from .api import ComfyClient, Event, OutputImage, PromptResult
from .errors import (
    ClientError,
    ExecutionInterruptedError,
    MissingNodeTypeError,
    ServerUnavailableError,
)

log = logging.getLogger("pakati.client")

SUMMARY_VERSION = 1


@dataclass
class PromptTask:
    """One prompt to run somewhere. ``images`` maps LoadImage node ids to images to upload
    to whichever server runs it; ``meta`` (a seed, a plan task id, ...) is copied to the result."""

    id: str
    prompt: dict
    images: dict[str, Any] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    output_nodes: list[str] | None = None


@dataclass
class Attempt:
    server: str
    started: float
    seconds: float
    outcome: str  # done | server_unavailable | missing_nodes | failed | interrupted
    error: str | None = None


@dataclass
class TaskResult:
    """What became of a task: ``status`` is done, failed or interrupted; ``server`` made it."""

    task_id: str
    status: str
    meta: dict
    server: str | None = None
    prompt_id: str | None = None
    images: list[OutputImage] = field(default_factory=list)
    seconds: float = 0.0
    attempts: list[Attempt] = field(default_factory=list)
    error: str | None = None
    files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "id": self.task_id,
            "status": self.status,
            "meta": self.meta,
            "server": self.server,
            "prompt_id": self.prompt_id,
            "seconds": round(self.seconds, 3),
            "error": self.error,
            "images": [{"node": im.node_id, "filename": im.filename, "subfolder": im.subfolder, "type": im.type} for im in self.images],
            "files": self.files,
            "attempts": [
                {"server": a.server, "outcome": a.outcome, "seconds": round(a.seconds, 3), "error": a.error} for a in self.attempts
            ],
        }


@dataclass
class ServerStats:
    url: str
    alive: bool = True
    done: int = 0
    failed: int = 0
    requeued: int = 0
    busy_seconds: float = 0.0
    error: str | None = None


@dataclass
class RunSummary:
    """Every task's result, per-server counts and timings; ``to_dict`` is the JSON summary."""

    backend: str
    results: list[TaskResult]
    servers: list[ServerStats]
    seconds: float
    interrupted: bool = False
    started: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.interrupted and all(r.status == "done" for r in self.results)

    @property
    def failures(self) -> list[TaskResult]:
        return [r for r in self.results if r.status != "done"]

    def to_dict(self) -> dict:
        return {
            "version": SUMMARY_VERSION,
            "backend": self.backend,
            "started": self.started,
            "seconds": round(self.seconds, 3),
            "interrupted": self.interrupted,
            "tasks": {
                "total": len(self.results),
                "done": sum(r.status == "done" for r in self.results),
                "failed": sum(r.status == "failed" for r in self.results),
                "interrupted": sum(r.status == "interrupted" for r in self.results),
            },
            "servers": [
                {
                    "url": s.url,
                    "alive": s.alive,
                    "done": s.done,
                    "failed": s.failed,
                    "requeued": s.requeued,
                    "busy_seconds": round(s.busy_seconds, 3),
                    "error": s.error,
                }
                for s in self.servers
            ],
            "results": [r.to_dict() for r in self.results],
            "failures": [{"id": r.task_id, "status": r.status, "error": r.error} for r in self.failures],
        }


def execute_task(
    client: ComfyClient,
    task: PromptTask,
    *,
    timeout: float | None = None,
    on_event: Callable[[Event], None] | None = None,
    cancel: threading.Event | None = None,
) -> PromptResult:
    """Upload the task's images to this server, queue its prompt, wait, fetch the images."""
    prompt = task.prompt
    if task.images:
        prompt = copy.deepcopy(prompt)
        for node_id, image in task.images.items():
            if node_id not in prompt:
                raise ClientError(f"task {task.id}: image for node {node_id}, which the prompt does not have")
            prompt[node_id]["inputs"]["image"] = client.upload_image(image)
    return client.run(prompt, timeout=timeout, on_event=on_event, cancel=cancel, output_nodes=task.output_nodes)


class ThreadBackend:
    """Runs tasks in a thread pool, each against its chosen server's :class:`ComfyClient`."""

    name = "threads"

    def __init__(self, clients: Sequence[ComfyClient], max_inflight: int):
        self.clients = list(clients)
        self.pool = cf.ThreadPoolExecutor(max_workers=max(1, len(self.clients) * max_inflight), thread_name_prefix="pakati-task")

    def submit(self, index: int, task: PromptTask, timeout: float | None, on_event, cancel: threading.Event) -> cf.Future:
        return self.pool.submit(execute_task, self.clients[index], task, timeout=timeout, on_event=on_event, cancel=cancel)

    def queue_length(self, index: int) -> int:
        return self.clients[index].queue_remaining()

    def cancel_all(self, index: int, prompt_ids: Iterable[str]) -> None:
        for pid in prompt_ids:
            self.clients[index].cancel(pid)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        for c in self.clients:
            c.close()


def unwrap_error(exc: BaseException) -> BaseException:
    """The client error inside a backend's wrapper (Ray wraps a task's exception in RayTaskError)."""
    seen = 0
    while seen < 5 and not isinstance(exc, ClientError):
        inner = getattr(exc, "cause", None) or exc.__cause__
        if inner is None or inner is exc:
            break
        exc, seen = inner, seen + 1
    return exc


class Dispatcher:
    """Run tasks over several servers: shortest queue first, re-queue on a dead server.

    ``max_inflight`` prompts per server are kept queued there (2 keeps a server busy while the
    previous result is fetched). A task whose server becomes unavailable is put back at the
    front of the queue for the others; a task whose server lacks a node type is tried on the
    others; an execution error in a node fails the task (running it again would fail again).
    """

    def __init__(
        self,
        servers: Sequence[str | ComfyClient],
        *,
        max_inflight: int = 1,
        timeout: float | None = None,
        backend: Any = None,
        on_event: Callable[[Event], None] | None = None,
        on_result: Callable[[TaskResult], None] | None = None,
        queue_probe_interval: float = 0.25,
        client_options: dict | None = None,
    ):
        if not servers:
            raise ClientError("at least one server URL is needed")
        self.clients = [s if isinstance(s, ComfyClient) else ComfyClient(s, **(client_options or {})) for s in servers]
        urls = [c.url for c in self.clients]
        if len(set(urls)) != len(urls):
            raise ClientError(f"a server is listed twice: {urls}")
        if max_inflight < 1:
            raise ClientError(f"max_inflight must be >= 1, got {max_inflight}")
        self.max_inflight = int(max_inflight)
        self.timeout = timeout
        self.backend = backend if backend is not None else ThreadBackend(self.clients, self.max_inflight)
        self.on_event, self.on_result = on_event, on_result
        self.queue_probe_interval = queue_probe_interval
        self.cancel = threading.Event()
        self._probe: dict[int, tuple[float, int]] = {}

    @property
    def urls(self) -> list[str]:
        return [c.url for c in self.clients]

    def _queue_length(self, i: int) -> int:
        now = time.monotonic()
        cached = self._probe.get(i)
        if cached and now - cached[0] < self.queue_probe_interval:
            return cached[1]
        try:
            n = self.backend.queue_length(i)
        except Exception:  # noqa: BLE001 - a probe failure only lowers the server's priority
            n = 1 << 20
        self._probe[i] = (now, n)
        return n

    def _pick(
        self, task: PromptTask, stats: list[ServerStats], inflight_on: list[int], excluded: set[int], assigned: list[int]
    ) -> int | None:
        cands = [i for i, s in enumerate(stats) if s.alive and i not in excluded and inflight_on[i] < self.max_inflight]
        if not cands:
            return None
        return min(cands, key=lambda i: (max(self._queue_length(i), inflight_on[i]), inflight_on[i], assigned[i], i))

    def run(self, tasks: Iterable[PromptTask]) -> RunSummary:
        """Run every task; returns when each is done, failed or interrupted (Ctrl-C)."""
        tasks = list(tasks)
        ids = [t.id for t in tasks]
        if len(set(ids)) != len(ids):
            raise ClientError("task ids must be unique")
        t0, started = time.monotonic(), time.time()
        stats = [ServerStats(c.url) for c in self.clients]
        results: dict[str, TaskResult] = {t.id: TaskResult(t.id, "pending", dict(t.meta)) for t in tasks}
        excluded: dict[str, set[int]] = {t.id: set() for t in tasks}
        pending: deque[PromptTask] = deque(tasks)
        inflight: dict[cf.Future, tuple[PromptTask, int, float]] = {}
        inflight_on = [0] * len(self.clients)
        assigned = [0] * len(self.clients)
        interrupted = False

        def finish(task: PromptTask, status: str, error: str | None = None) -> None:
            r = results[task.id]
            r.status, r.error = status, error
            if self.on_result is not None:
                self.on_result(r)

        try:
            while pending or inflight:
                while pending and not self.cancel.is_set():
                    task = pending[0]
                    i = self._pick(task, stats, inflight_on, excluded[task.id], assigned)
                    if i is None:
                        if not any(s.alive and j not in excluded[task.id] for j, s in enumerate(stats)):
                            pending.popleft()
                            why = "; ".join(a.error or a.outcome for a in results[task.id].attempts) or "no server is alive"
                            finish(task, "failed", f"no server left to run it ({why})")
                            continue
                        break
                    pending.popleft()
                    fut = self.backend.submit(i, task, self.timeout, self.on_event, self.cancel)
                    inflight[fut] = (task, i, time.monotonic())
                    inflight_on[i] += 1
                    assigned[i] += 1
                if self.cancel.is_set() and not inflight:
                    break
                if not inflight:
                    continue
                done, _ = cf.wait(list(inflight), timeout=0.2, return_when=cf.FIRST_COMPLETED)
                for fut in done:
                    task, i, t_start = inflight.pop(fut)
                    inflight_on[i] -= 1
                    secs = time.monotonic() - t_start
                    stats[i].busy_seconds += secs
                    r = results[task.id]
                    exc = fut.exception()
                    if exc is None:
                        res: PromptResult = fut.result()
                        r.attempts.append(Attempt(stats[i].url, t_start, secs, "done"))
                        if r.status == "done":  # cannot happen with one live attempt; guard all the same
                            log.warning("task %s finished twice; keeping the first result", task.id)
                            continue
                        r.server, r.prompt_id, r.images, r.seconds = res.server, res.prompt_id, res.images, res.seconds
                        stats[i].done += 1
                        finish(task, "done")
                        continue
                    err = unwrap_error(exc)
                    msg = str(err)
                    r.prompt_id = getattr(err, "prompt_id", None) or r.prompt_id
                    if isinstance(err, ExecutionInterruptedError) or isinstance(err, KeyboardInterrupt):
                        r.attempts.append(Attempt(stats[i].url, t_start, secs, "interrupted", msg))
                        if self.cancel.is_set():
                            finish(task, "interrupted", msg)
                        else:
                            stats[i].failed += 1
                            finish(task, "failed", msg)
                    elif isinstance(err, ServerUnavailableError) or _is_actor_death(exc):
                        r.attempts.append(Attempt(stats[i].url, t_start, secs, "server_unavailable", msg))
                        stats[i].alive, stats[i].error = False, msg
                        stats[i].requeued += 1
                        log.warning("%s is unavailable (%s); task %s goes back on the queue", stats[i].url, msg, task.id)
                        if self.cancel.is_set():
                            finish(task, "interrupted", msg)
                        else:
                            pending.appendleft(task)
                    elif isinstance(err, MissingNodeTypeError):
                        r.attempts.append(Attempt(stats[i].url, t_start, secs, "missing_nodes", msg))
                        excluded[task.id].add(i)
                        pending.appendleft(task)
                    else:
                        r.attempts.append(Attempt(stats[i].url, t_start, secs, "failed", msg))
                        stats[i].failed += 1
                        finish(task, "failed", msg)
        except KeyboardInterrupt:
            interrupted = True
            self.interrupt(inflight, results, pending, finish)
        finally:
            if self.cancel.is_set():
                interrupted = True
                for task in pending:
                    if results[task.id].status == "pending":
                        finish(task, "interrupted", "not started: the run was interrupted")
        return RunSummary(
            getattr(self.backend, "name", type(self.backend).__name__),
            [results[t] for t in ids],
            stats,
            time.monotonic() - t0,
            interrupted,
            started,
        )

    def interrupt(self, inflight: dict, results: dict, pending: deque, finish) -> None:
        """Ctrl-C: every running task cancels its prompt on its server; wait for them to end."""
        self.cancel.set()
        log.warning("interrupted: taking our prompts off the servers")
        try:
            for fut in cf.as_completed(list(inflight), timeout=60):
                task, i, t_start = inflight.pop(fut)
                exc = fut.exception()
                r = results[task.id]
                if exc is None:
                    res = fut.result()
                    r.server, r.prompt_id, r.images, r.seconds = res.server, res.prompt_id, res.images, res.seconds
                    r.attempts.append(Attempt(self.clients[i].url, t_start, time.monotonic() - t_start, "done"))
                    finish(task, "done")
                else:
                    err = unwrap_error(exc)
                    r.prompt_id = getattr(err, "prompt_id", None) or r.prompt_id
                    r.attempts.append(Attempt(self.clients[i].url, t_start, time.monotonic() - t_start, "interrupted", str(err)))
                    finish(task, "interrupted", str(err))
        except (cf.TimeoutError, KeyboardInterrupt):
            for fut, (task, i, _) in list(inflight.items()):
                finish(task, "interrupted", "abandoned on a second interrupt")

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> "Dispatcher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _is_actor_death(exc: BaseException) -> bool:
    """Ray reports an actor whose process died (after its restarts) as RayActorError."""
    return any(c.__name__ in ("RayActorError", "ActorDiedError", "ActorUnavailableError") for c in type(exc).__mro__)
