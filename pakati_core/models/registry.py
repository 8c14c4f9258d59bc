"""The model registry: capabilities and defaults read from configuration, never hard-coded in the providers.

The shipped ``models.json`` is merged with a user override (``$PAKATI_MODELS_FILE`` or
``<ComfyUI user dir>/pakati/models.json``, same shape): ``defaults`` and ``providers`` are
merged key by key, ``models`` entries replace shipped ones by name. Providers retire models;
a retired name resolves to ``ModelRetiredError`` naming the setting that chose it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from .credentials import PROVIDERS, user_dir
from .errors import ModelConfigError, ModelRetiredError

KINDS = ("image", "vision", "text")


@dataclass(frozen=True)
class ModelSpec:
    """One model's capabilities as configured."""

    name: str
    provider: str
    kinds: tuple[str, ...]
    sizes: tuple[tuple[int, int], ...] = ()
    max_side: int = 2048
    inpainting: bool = False
    regional: bool = False
    seed: bool = False
    qualities: tuple[str, ...] = ()
    cost_usd: dict = field(default_factory=dict)
    requests_per_minute: float | None = None
    retired: bool = False
    replacement: str | None = None
    legacy: bool = False  # still served, but not the provider's current model: chosen after current ones
    note: str = ""
    known: bool = True

    def cost(self, quality: str | None = None) -> float | None:
        """Estimated USD per call (per quality for image models)."""
        if quality and quality in self.cost_usd:
            return float(self.cost_usd[quality])
        for key in ("call", "auto", "medium"):
            if key in self.cost_usd:
                return float(self.cost_usd[key])
        return None


@dataclass(frozen=True)
class ProviderSettings:
    requests_per_minute: float = 60.0
    burst: int = 5
    timeout_s: float = 120.0
    max_calls: int = 3
    backoff_s: float = 1.0
    backoff_cap_s: float = 30.0
    max_tokens: int = 4096


@dataclass(frozen=True)
class Resolved:
    """A model chosen for a call, and the setting that chose it (named in errors)."""

    spec: ModelSpec
    setting: str


def _size(text: str, where: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise ModelConfigError(f"size {text!r} is not WIDTHxHEIGHT", field=where) from None
    if w <= 0 or h <= 0:
        raise ModelConfigError(f"size {text!r} must be positive", field=where)
    return w, h


def _spec(entry: dict, where: str) -> ModelSpec:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or entry.get("provider") not in PROVIDERS:
        raise ModelConfigError(f"each model needs a 'name' and a 'provider' in {PROVIDERS}", field=where)
    kinds = tuple(entry.get("kinds", ()))
    if not kinds or any(k not in KINDS for k in kinds):
        raise ModelConfigError(f"'kinds' must list some of {KINDS}", field=f"{where}.kinds")
    rpm = entry.get("requests_per_minute")
    return ModelSpec(
        name=entry["name"],
        provider=entry["provider"],
        kinds=kinds,
        sizes=tuple(_size(s, f"{where}.sizes") for s in entry.get("sizes", ())),
        max_side=int(entry.get("max_side", 2048)),
        inpainting=bool(entry.get("inpainting", False)),
        regional=bool(entry.get("regional", False)),
        seed=bool(entry.get("seed", False)),
        qualities=tuple(entry.get("qualities", ())),
        cost_usd=dict(entry.get("cost_usd", {})),
        requests_per_minute=float(rpm) if rpm is not None else None,
        retired=bool(entry.get("retired", False)),
        replacement=entry.get("replacement"),
        legacy=bool(entry.get("legacy", False)),
        note=str(entry.get("note") or ""),
    )


def shipped_config() -> dict:
    return json.loads(resources.files(__package__).joinpath("models.json").read_text(encoding="utf-8"))


def user_config_path() -> Path | None:
    env = os.environ.get("PAKATI_MODELS_FILE")
    if env:
        return Path(env).expanduser()
    base = user_dir()
    return base / "pakati" / "models.json" if base else None


def merge(base: dict, override: dict) -> dict:
    out = json.loads(json.dumps(base))
    for section in ("defaults", "providers"):
        for provider, values in (override.get(section) or {}).items():
            out.setdefault(section, {}).setdefault(provider, {}).update(values or {})
    by_name = {m["name"]: m for m in out.get("models", [])}
    for m in override.get("models") or []:
        by_name[m.get("name")] = m
    out["models"] = list(by_name.values())
    return out


class Registry:
    """Models, provider settings and defaults from the merged configuration."""

    def __init__(self, config: dict, source: str = "models.json"):
        self.source = source
        if not isinstance(config, dict) or config.get("version") != 1:
            raise ModelConfigError('expected a JSON object with "version": 1', field="version")
        self.models: dict[str, ModelSpec] = {}
        for i, entry in enumerate(config.get("models", [])):
            spec = _spec(entry, f"models[{i}]")
            self.models[spec.name] = spec
        self.defaults: dict[str, dict[str, str]] = {p: dict(v) for p, v in (config.get("defaults") or {}).items()}
        self.providers: dict[str, ProviderSettings] = {}
        for p in PROVIDERS:
            raw = (config.get("providers") or {}).get(p, {})
            try:
                self.providers[p] = ProviderSettings(**raw)
            except TypeError as e:
                raise ModelConfigError(f"unknown setting for provider {p}: {e}", field=f"providers.{p}") from None

    @classmethod
    def load(cls, user_file: str | Path | None = None) -> "Registry":
        """The shipped configuration merged with the user's override file, when there is one."""
        config = shipped_config()
        path = Path(user_file) if user_file else user_config_path()
        source = "models.json (shipped)"
        if path is not None and path.is_file():
            try:
                override = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as e:
                raise ModelConfigError(f"{path} is not valid JSON: {e.msg} at line {e.lineno}", field="models file") from None
            config = merge(config, override)
            source = str(path)
        return cls(config, source)

    def settings(self, provider: str) -> ProviderSettings:
        return self.providers.get(provider, ProviderSettings())

    def default_setting_name(self, provider: str, kind: str) -> str:
        where = user_config_path()
        return f"defaults.{provider}.{kind} in {where or 'the models file ($PAKATI_MODELS_FILE or <ComfyUI user dir>/pakati/models.json)'}"

    def default(self, provider: str, kind: str) -> str:
        name = (self.defaults.get(provider) or {}).get(kind)
        if not name:
            raise ModelConfigError(
                f"no default {kind} model for provider {provider}; set {self.default_setting_name(provider, kind)}",
                field=f"defaults.{provider}.{kind}",
            )
        return name

    def get(self, name: str) -> ModelSpec | None:
        return self.models.get(name)

    def of_kind(self, kind: str, provider: str | None = None) -> list[ModelSpec]:
        return [m for m in self.models.values() if kind in m.kinds and not m.retired and (provider is None or m.provider == provider)]

    def resolve(self, provider: str, kind: str, model: str | None = None, setting: str | None = None) -> Resolved:
        """The spec to call: ``model`` (chosen by ``setting``, e.g. a node input) or the configured default.

        A model the registry does not list is allowed (providers add models faster than this file
        changes) with the capabilities of the provider's default for that kind.
        """
        if model and model.strip():
            name, where = model.strip(), setting or "the 'model' setting"
        else:
            name, where = self.default(provider, kind), self.default_setting_name(provider, kind)
        spec = self.models.get(name)
        if spec is not None and spec.provider != provider:
            raise ModelConfigError(f"model '{name}' belongs to provider {spec.provider}, not {provider}; change {where}", field="model")
        if spec is not None and kind not in spec.kinds:
            raise ModelConfigError(f"model '{name}' cannot do {kind} (it does {', '.join(spec.kinds)}); change {where}", field="model")
        if spec is not None and spec.retired:
            raise retired_error(provider, name, where, spec.replacement or self.defaults.get(provider, {}).get(kind))
        if spec is None:
            base = self.models.get(self.defaults.get(provider, {}).get(kind, ""))
            spec = ModelSpec(
                name=name,
                provider=provider,
                kinds=(kind,),
                known=False,
                **(
                    {}
                    if base is None
                    else dict(
                        sizes=base.sizes, max_side=base.max_side, inpainting=base.inpainting, qualities=base.qualities, seed=base.seed
                    )
                ),
            )
        return Resolved(spec, where)


def retired_error(provider: str, name: str, setting: str, replacement: str | None) -> ModelRetiredError:
    hint = f" (for example to '{replacement}')" if replacement else ""
    return ModelRetiredError(
        f"model '{name}' is retired or unknown at provider {provider}: change {setting}{hint}", provider=provider, field="model"
    )


_cache: tuple[object, Registry] | None = None


def default_registry(reload: bool = False) -> Registry:
    """The process-wide registry, re-read whenever the user's override file appears or changes."""
    global _cache
    path = user_config_path()
    stamp = (str(path), path.stat().st_mtime_ns) if path is not None and path.is_file() else (str(path), None)
    if reload or _cache is None or _cache[0] != stamp:
        _cache = (stamp, Registry.load())
    return _cache[1]
