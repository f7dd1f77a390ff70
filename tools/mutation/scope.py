"""What is mutated (the security core) and which fast unit tests judge each module's mutants."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "operator"
# Test helpers every unit test may import: part of each target's test hash.
HELPERS = ("tests/conftest.py", "tests/material.py", "tests/unit/fakes.py")


@dataclass(frozen=True)
class Target:
    """One module's mutants: `functions` (fnmatch patterns of qualified names, nested code included)
    limits them, None mutates the whole module; `tests` are files or folders; `deselect` node ids of
    tests that cannot see an in-memory mutant (a subprocess imports the module from disk)."""

    path: str  # relative to ROOT, e.g. "operator/jwks_operator/verify/verifier.py"
    tests: tuple[str, ...]
    functions: tuple[str, ...] | None = None
    deselect: tuple[str, ...] = ()

    @property
    def module(self) -> str:
        """The dotted module name, e.g. jwks_operator.verify.verifier."""
        return ".".join(Path(self.path).relative_to("operator").with_suffix("").parts)

    @property
    def name(self) -> str:
        """The path as the table shows it, e.g. verify/verifier.py."""
        return str(Path(self.path).relative_to("operator/jwks_operator"))

    def test_files(self) -> list[Path]:
        """Every file that makes up the test set (for the cache key): the tests and the helpers."""
        files: set[Path] = {ROOT / h for h in HELPERS}
        for entry in self.tests:
            path = ROOT / entry
            files.update(path.rglob("*.py") if path.is_dir() else [path])
        return sorted(f for f in files if f.exists())


# The gateway tests that cover every gateway at once: objects of the wrong shape, others' entries, marks.
_SHARED_GATEWAY_TESTS = ("test_malformed.py", "test_foreign_entries.py", "test_marks.py")


def _gateway(name: str) -> Target:
    """A gateway output: its mutate functions (Space Cloud's is ProjectWrite.__call__)."""
    folder = "tests/unit/publish/gateways"
    own = (f"test_{name}.py", f"test_mutations_{name}.py")
    tests = tuple(f"{folder}/{test}" for test in (*own, *_SHARED_GATEWAY_TESTS))
    path = f"operator/jwks_operator/publish/gateways/{name}.py"
    return Target(path, tests, functions=("*.mutate", "*.__call__"))


_VERIFY_TESTS = ("tests/unit/verify",)
_SUBPROCESS_CLI = ("tests/unit/verify/test_verify.py::test_cli_with_a_directory",)

TARGETS: tuple[Target, ...] = (
    Target("operator/jwks_operator/verify/verifier.py", _VERIFY_TESTS, deselect=_SUBPROCESS_CLI),
    Target("operator/jwks_operator/verify/data.py", _VERIFY_TESTS, deselect=_SUBPROCESS_CLI),
    Target("operator/jwks_operator/keys/checks.py", ("tests/unit/keys",)),
    Target(
        "operator/jwks_operator/keys/keyset.py",
        ("tests/unit/keys",),
        functions=(
            "key_algorithms",
            "validate_jwk",
            "_check_*",
            "build_key_set",
            "_clashing_kids",
            "require_keys",
            "parse_jwks_document",
            "_not_json",
        ),
    ),
    Target(
        "operator/jwks_operator/fetch/netguard.py",
        ("tests/unit/fetch/test_netguard.py", "tests/unit/fetch/test_netguard_connections.py"),
    ),
    Target("operator/jwks_operator/model/freshness.py", ("tests/unit/model/test_freshness.py",)),
    Target(
        "operator/jwks_operator/publish/bodies.py",
        (
            "tests/unit/publish/test_outputs.py",
            "tests/unit/publish/test_mutations_bodies.py",
            "tests/unit/kube/test_kube_writes.py",
        ),
        functions=("shared",),
    ),
    *(_gateway(name) for name in ("istio", "envoygateway", "spacecloud", "kong", "nginx")),
)


def pytest_args(target: Target) -> list[str]:
    """Quiet, first failure stops, no plugin that reorders or caches, nor the one that collects garbage
    after the session (a tenth of a second, for no verdict); only the tests that exist."""
    tests = [t for t in target.tests if (ROOT / t).exists()]
    deselected = [arg for test in target.deselect for arg in ("--deselect", test)]
    plugins = ["-p", "no:cacheprovider", "-p", "no:randomly", "-p", "no:unraisableexception"]
    return ["-q", "-x", "--no-header", *plugins, *tests, *deselected]
