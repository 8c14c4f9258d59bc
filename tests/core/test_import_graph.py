"""The shape of pakati_core's imports, read from the source (nothing is imported):

- no import cycle between pakati_core's packages (each subpackage and each top-level module is one node);
- no package imports another package's private (underscore) names or modules;
- the shared base (errors, finite, jsonutil, images, masks, geometry, redaction, prompts, retry, phrases) imports nothing but the base;
- pakati_core never imports ComfyUI (``comfy``, ``comfy_api``, ``comfy_extras``, ``folder_paths``, ``server``, ``nodes``).

Every import statement counts, also one inside a function: a lazy import dodges a cycle at run time
but keeps the two packages tangled. The checks run on a small synthetic tree too, so they are
known to fail where they should.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BASE = {"errors", "finite", "jsonutil", "images", "masks", "geometry", "redaction", "prompts", "retry", "phrases"}
COMFY = {"comfy", "comfy_api", "comfy_extras", "folder_paths", "server", "nodes", "execution"}


@dataclass
class ImportGraph:
    package: str
    modules: set[str] = field(default_factory=set)
    edges: dict[str, set[str]] = field(default_factory=dict)  # module -> imported modules (absolute, dotted)
    names: list[tuple[str, str, str]] = field(default_factory=list)  # (module, imported module, name)
    lines: dict[tuple[str, str], int] = field(default_factory=dict)

    def unit(self, module: str) -> str | None:
        """The package-level node of a module: ``pkg.sub`` for anything under ``pkg/sub``, None outside the package."""
        parts = module.split(".")
        if parts[0] != self.package:
            return None
        return ".".join(parts[:2]) if len(parts) > 1 else parts[0]


def read_graph(root: Path, package: str = "pakati_core") -> ImportGraph:
    g = ImportGraph(package)
    files = sorted(p for p in (root / package).rglob("*.py") if "migrations" not in p.parts)
    for path in files:
        rel = path.relative_to(root).with_suffix("")
        parts = list(rel.parts)
        is_init = parts[-1] == "__init__"
        module = ".".join(parts[:-1] if is_init else parts)
        g.modules.add(module)
    for path in files:
        rel = path.relative_to(root).with_suffix("")
        parts = list(rel.parts)
        is_init = parts[-1] == "__init__"
        module = ".".join(parts[:-1] if is_init else parts)
        pkg = module if is_init else module.rpartition(".")[0]
        targets = g.edges.setdefault(module, set())
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    targets.add(alias.name)
                    g.lines[(module, alias.name)] = node.lineno
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                for alias in node.names:
                    sub = f"{source}.{alias.name}"
                    target = sub if sub in g.modules else source  # ``from . import x`` imports the module x
                    targets.add(target)
                    g.lines[(module, target)] = node.lineno
                    g.names.append((module, source, alias.name))
    return g


def package_cycles(g: ImportGraph) -> list[list[str]]:
    """Strongly connected groups of more than one package-level node (Tarjan)."""
    deps: dict[str, set[str]] = {}
    for module, targets in g.edges.items():
        a = g.unit(module)
        for t in targets:
            b = g.unit(t)
            if a and b and a != b and b != g.package:  # the package root re-exports; it is no feature
                deps.setdefault(a, set()).add(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in deps.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(deps):
        if v not in index:
            visit(v)
    return out


def private_imports(g: ImportGraph) -> list[str]:
    """Underscore names or modules that one package takes from another."""
    found = []
    for module, source, name in g.names:
        if g.unit(source) is None or g.unit(source) == g.unit(module):
            continue
        private_name = name.startswith("_") and not name.startswith("__")
        private_module = any(p.startswith("_") and not p.startswith("__") for p in source.split("."))
        if private_name or private_module:
            found.append(f"{module} imports {source}.{name}")
    return found


def base_violations(g: ImportGraph) -> list[str]:
    found = []
    for module, targets in g.edges.items():
        if g.unit(module) not in {f"{g.package}.{b}" for b in BASE}:
            continue
        for t in targets:
            u = g.unit(t)
            if u and u != g.unit(module) and u.rpartition(".")[2] not in BASE:
                found.append(f"{module} (base) imports {t}")
    return found


def comfy_imports(g: ImportGraph) -> list[str]:
    return sorted(f"{m} imports {t}" for m, ts in g.edges.items() for t in ts if t.split(".")[0] in COMFY)


def test_no_cycle_between_pakati_core_packages():
    assert package_cycles(read_graph(ROOT)) == []


def test_no_package_imports_another_packages_private_helpers():
    assert private_imports(read_graph(ROOT)) == []


def test_the_shared_base_imports_only_the_base():
    assert base_violations(read_graph(ROOT)) == []


def test_attention_maps_reads_subject_words_with_the_base_reader_not_the_planner():
    """The phrase reader is shared base (pakati_core.phrases): Attend-and-Excite's subject word comes from it,
    so attention_maps imports nothing of the planner (orchestration), lazily or not."""
    g = read_graph(ROOT)
    planner = [
        f"{m} imports {t}"
        for m, targets in g.edges.items()
        if g.unit(m) == "pakati_core.attention_maps"
        for t in targets
        if g.unit(t) == "pakati_core.orchestration"
    ]
    assert planner == []
    assert any(g.unit(t) == "pakati_core.phrases" for t in g.edges["pakati_core.attention_maps.tokens"])


def test_pakati_core_never_imports_comfyui():
    g = read_graph(ROOT)
    assert len(g.modules) > 60  # the walk found the package
    assert comfy_imports(g) == []


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_checks_catch_what_they_look_for(tmp_path):
    """A tree with the faults pakati_core had (two packages importing each other, one of them lazily),
    a private helper taken sideways, the base importing a feature, and a ComfyUI import: each is reported."""
    _write(
        tmp_path,
        {
            "pakati_core/__init__.py": "from .canvas import Canvas\n",
            "pakati_core/canvas.py": "class Canvas: ...\n",
            "pakati_core/images.py": "from .regional.attention import grid_shape\n",
            "pakati_core/regional/__init__.py": "",
            "pakati_core/regional/attention.py": "from ..attention_maps.tokens import subject_word\ndef grid_shape(): ...\n",
            "pakati_core/attention_maps/__init__.py": "from . import tokens\n",
            "pakati_core/attention_maps/tokens.py": "def subject_word():\n    from ..regional.attention import grid_shape\n",
            "pakati_core/delta/__init__.py": "from ..regenerate.blend import _disc\nimport comfy.model_management\n",
            "pakati_core/regenerate/__init__.py": "",
            "pakati_core/regenerate/blend.py": "def _disc(): ...\n",
        },
    )
    g = read_graph(tmp_path)
    assert package_cycles(g) == [["pakati_core.attention_maps", "pakati_core.regional"]]
    assert private_imports(g) == ["pakati_core.delta imports pakati_core.regenerate.blend._disc"]
    assert base_violations(g) == ["pakati_core.images (base) imports pakati_core.regional.attention"]
    assert comfy_imports(g) == ["pakati_core.delta imports comfy.model_management"]
