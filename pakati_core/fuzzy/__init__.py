"""Fuzzy engine: Mamdani inference over rules stored as JSON data (defaults plus user overrides)."""

from __future__ import annotations

from .engine import Inference, MamdaniEngine
from .rulebase import FuzzyRuleError, RuleBase, default_rules_path, load_rulebase, merge_overrides

__all__ = ["Inference", "MamdaniEngine", "FuzzyRuleError", "RuleBase", "default_rules_path", "load_rulebase", "merge_overrides"]
