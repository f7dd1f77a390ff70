"""The package's layers (operator/jwks_operator/<layer>/): each imports only its own folder and the
layers below it, and no module imports itself back through others."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from collections.abc import Iterable, Mapping
from pathlib import Path

import jwks_operator

PACKAGE = Path(jwks_operator.__file__).parent
# Bottom to top: a module may import from its own layer and from those before it, never from one after.
LAYERS = ("model", "keys", "verify", "resource", "fetch", "publish", "kube", "runtime", "engine", "app")
ROOT = "jwks_operator"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, modules: Iterable[str]) -> set[str]:
    """The package modules a file imports (absolute or relative, anywhere in the file, TYPE_CHECKING too):
    `from pkg import module` is an import of that module, `from module import name` one of the module."""
    known = set(modules)
    name = module_name(path)
    here = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")[: len(here.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            submodules = {f"{module}.{a.name}" for a in node.names} & known
            found.update(submodules or {module})
    return {m for m in found if m in known}


def graph() -> dict[str, set[str]]:
    """Each module of the package and the package modules it imports (names resolved to existing modules)."""
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: imports(path, files) - {name} for name, path in files.items()}


def layer(module: str) -> int:
    """A module's rank: its folder's place in LAYERS (the package root and __main__ sit outside them)."""
    parts = module.split(".")
    if module == ROOT:
        return -1  # __version__: importable from everywhere
    if parts[1] == "__main__":
        return len(LAYERS)
    return LAYERS.index(parts[1])


def violations(edges: Mapping[str, Iterable[str]]) -> list[str]:
    """Every import of a layer above the importer's."""
    return sorted(
        f"{src} ({LAYERS[layer(src)] if layer(src) < len(LAYERS) else 'top'}) imports {dst} "
        f"({LAYERS[layer(dst)]})"
        for src, targets in edges.items()
        for dst in targets
        if layer(dst) > layer(src)
    )


def cycles(edges: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_only_the_entry_points_sit_at_the_top() -> None:
    assert sorted(p.name for p in PACKAGE.glob("*.py")) == ["__init__.py", "__main__.py"]


def test_every_folder_is_a_layer_and_says_what_it_holds() -> None:
    folders = sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__")
    assert folders == sorted(LAYERS)
    for name in LAYERS:
        doc = ast.get_docstring(ast.parse((PACKAGE / name / "__init__.py").read_text()))
        assert doc, f"{name}/__init__.py has no docstring"


def test_no_module_imports_from_a_layer_above_its_own() -> None:
    assert violations(graph()) == []


def test_no_import_circle() -> None:
    assert cycles(graph()) == []


def test_the_checks_see_an_upward_import_and_a_circle() -> None:
    """The two checks above fail when they should: model importing the engine, two modules in a ring."""
    edges = graph()
    edges["jwks_operator.model.names"] = {*edges["jwks_operator.model.names"], "jwks_operator.engine.engine"}
    assert violations(edges) == [
        "jwks_operator.model.names (model) imports jwks_operator.engine.engine (engine)"
    ]
    assert cycles(edges)  # engine reaches names, names now reaches engine
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_relative_imports_are_resolved() -> None:
    tree = PACKAGE / "model" / "__init__.py"
    assert module_name(tree) == "jwks_operator.model"
    assert layer("jwks_operator.app.cli") == LAYERS.index("app")


BLOCKED = textwrap.dedent(
    """
    import importlib.abc, sys

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"kopf", "kubernetes", "prometheus_client", "requests"}:
                raise ImportError(f"{name} is blocked")
            return None

    sys.meta_path.insert(0, Block())
    import json, time, jwt
    from cryptography.hazmat.primitives.asymmetric import ec
    from jwks_operator.verify import Verifier, sources_from_data

    key = ec.generate_private_key(ec.SECP256R1())
    jwk = {**jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": "k", "alg": "ES256"}
    policy = {"issuers": [], "audiences": ["api"], "algorithms": ["ES256"], "source": {"type": "jwks"}}
    data = {"jwks.json": json.dumps({"keys": [jwk]}), "policy.json": json.dumps(policy)}
    verifier = Verifier(sources_from_data(data))
    claims = {"aud": "api", "exp": time.time() + 60}
    good = verifier.verify(jwt.encode(claims, key, "ES256", headers={"kid": "k"}))
    wrong = verifier.verify(jwt.encode({**claims, "aud": "other"}, key, "ES256", headers={"kid": "k"}))
    assert good.valid and not wrong.valid, (good, wrong)
    blocked = {"kopf", "kubernetes", "prometheus_client", "requests"}
    assert not blocked & {m.split(".")[0] for m in sys.modules}
    print("ok", wrong.reason)
    """
)


def test_the_verify_library_needs_neither_kopf_nor_kubernetes() -> None:
    """Gateways written in Python embed jwks_operator.verify: it imports in an interpreter where kopf,
    kubernetes, prometheus_client and requests cannot be imported, and verifies there."""
    done = subprocess.run([sys.executable, "-c", BLOCKED], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok ")
