"""Probe for the optional-dependency loader test: imports a package that is never installed."""

import openai_probe_absent  # noqa: F401

NODES: list = []
