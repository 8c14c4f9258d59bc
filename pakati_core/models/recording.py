"""Default call recorders: a log line per call (model, duration, size, estimated cost; no prompt, no key)."""

from __future__ import annotations

import logging

from .protocols import CallRecord

log = logging.getLogger("pakati.models")


class LoggingRecorder:
    """Logs each provider call at INFO; the store's recorder replaces it where one is configured."""

    def record(self, call: CallRecord) -> None:
        cost = f" est ${call.estimated_cost_usd:.3f}" if call.estimated_cost_usd is not None else ""
        size = f" {call.size}" if call.size else ""
        outcome = "ok" if call.ok else f"failed ({call.error_kind})"
        calls = call.extra.get("calls")
        log.info(
            "Pakati model call: %s %s %s%s %s in %.2fs%s%s",
            call.provider,
            call.model,
            call.operation,
            size,
            outcome,
            call.duration_s,
            cost,
            f" after {calls} calls" if calls and calls > 1 else "",
        )


class ListRecorder:
    """Keeps the records in memory (tests, the selector's success history)."""

    def __init__(self) -> None:
        self.calls: list[CallRecord] = []

    def record(self, call: CallRecord) -> None:
        self.calls.append(call)
