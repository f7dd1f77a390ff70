"""README.md's Troubleshooting and Observability tables against the code, so that they cannot drift.

- Every reason the code sets on a condition is in jwks_operator.model.reasons.REASONS, and every reason
  there is one the code sets. The code is read, not imported: an AST scan of operator/jwks_operator for
  the places a reason is given (an error class's `reason`, when the class is raised somewhere, or its
  `__init__`'s default; the `reason` argument of a class that takes one, e.g. `OutputError("Reason",
  ...)`, by position or keyword; `make(...)`/`condition(...)` and `OutputStatus(...)` in the status
  builder; the (reason, message) pairs of a spec's `warnings()`).
- README's Troubleshooting table is REASONS, row for row.
- README's Observability table lists every metric the operator exports (name, type, labels, help).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.metrics import MetricWrapperBase

from jwks_operator.model import errors
from jwks_operator.model.reasons import REASONS, Reason
from jwks_operator.runtime.metrics import Metrics
from tests.harness.readme import README, section

PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "jwks_operator"
CAMEL = re.compile(r"[A-Z][a-z]+(?:[A-Z][a-z]+)*")


def _name(func: ast.expr) -> str:
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _text(node: ast.expr, constants: dict[str, str]) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    return None


def code_reasons(sources: dict[str, str] | None = None) -> dict[str, str]:
    """reason -> where the code sets it (module:line); `sources`: module -> text (default: the package)."""
    if sources is None:
        sources = {str(p.relative_to(PACKAGE)): p.read_text() for p in sorted(PACKAGE.rglob("*.py"))}
    trees = {where: ast.parse(text) for where, text in sources.items()}
    called = {_name(n.func) for tree in trees.values() for n in ast.walk(tree) if isinstance(n, ast.Call)}
    takes = {  # class -> the position of its __init__'s `reason` parameter (self left out)
        node.name: [a.arg for a in item.args.args[1:]].index("reason")
        for tree in trees.values()
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        for item in node.body
        if isinstance(item, ast.FunctionDef)
        and item.name == "__init__"
        and "reason" in [a.arg for a in item.args.args[1:]]
    }
    found: dict[str, str] = {}
    for where, tree in trees.items():
        constants = {
            t.id: n.value.value
            for n in tree.body
            if isinstance(n, ast.Assign)
            and isinstance(n.value, ast.Constant)
            and isinstance(n.value.value, str)
            for t in n.targets
            if isinstance(t, ast.Name)
        }
        given: list[tuple[ast.expr, int]] = []  # the expressions that give a reason, and their lines
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name in called:
                for item in node.body:
                    targets = item.targets if isinstance(item, ast.Assign) else []
                    if any(isinstance(t, ast.Name) and t.id == "reason" for t in targets):
                        assert isinstance(item, ast.Assign)
                        given.append((item.value, item.lineno))
                    elif isinstance(item, ast.FunctionDef) and item.name == "__init__":  # reason="Default"
                        named = item.args.args[len(item.args.args) - len(item.args.defaults) :]
                        pairs = [
                            *zip(named, item.args.defaults, strict=True),
                            *zip(item.args.kwonlyargs, item.args.kw_defaults, strict=True),
                        ]
                        given += [(d, item.lineno) for a, d in pairs if a.arg == "reason" and d is not None]
            elif isinstance(node, ast.Call):
                name, args = _name(node.func), node.args
                given += [(k.value, node.lineno) for k in node.keywords if k.arg == "reason"]  # reason="X"
                if name in takes and len(args) > takes[name]:  # e.g. OutputError("Reason", message)
                    given.append((args[takes[name]], node.lineno))
                elif name in ("make", "condition") and len(args) > 2:
                    given.append((args[2], node.lineno))
                elif name == "OutputStatus" and len(args) > 4:
                    given.append((args[4], node.lineno))
            elif isinstance(node, ast.FunctionDef) and node.name == "warnings":
                for tup in (n for n in ast.walk(node) if isinstance(n, ast.Tuple) and n.elts):
                    given.append((tup.elts[0], tup.lineno))
        for expr, line in given:
            text = _text(expr, constants)
            if text is not None:
                found.setdefault(text, f"{where}:{line}")
    return {reason: at for reason, at in found.items() if CAMEL.fullmatch(reason)}


def test_the_scan_sees_a_reason_given_as_a_default_or_a_keyword() -> None:
    """Forms the package does not use today, so that a reason given so later is not missed."""
    source = """
class BrokenError(OutputError):
    def __init__(self, where: str, problem: str, reason: str = "BrokenObject") -> None:
        super().__init__(reason, where)


def check(x):
    raise BrokenError(x, "p", reason="AlsoBroken")


def other(x):
    raise BrokenError(x, "p", "ThirdPlace")
"""
    assert set(code_reasons({"m.py": source})) == {"BrokenObject", "AlsoBroken", "ThirdPlace"}


def test_the_scan_finds_reasons_wherever_they_are_set() -> None:
    """The scan itself can fail: it finds reasons of each kind of place (else it would pass on nothing)."""
    found = code_reasons()
    for reason, module in [
        ("FetchFailed", "model/errors.py"),  # an error class's reason
        ("KindNotInstalled", "engine/gateway_outputs.py"),  # OutputError(...) (also a class's reason)
        ("OutputConflict", "publish/gateways/"),
        ("KeysPublished", "resource/status.py"),  # make(...)
        ("ReleaseFailed", "resource/status.py"),  # condition(...) with a constant
        ("Written", "engine/gateway_outputs.py"),  # OutputStatus(...)
        ("InsecureHttp", "resource/spec.py"),  # warnings()
    ]:
        assert reason in found, reason
        assert found[reason].startswith(module) or reason == "KindNotInstalled", (reason, found[reason])
    assert "SecretNotFound" not in found, "SecretRefError is never raised itself, only its subclass"


def test_every_reason_the_code_sets_is_listed_and_every_listed_one_is_set() -> None:
    found = code_reasons()
    listed = [r.name for r in REASONS]
    assert len(listed) == len(set(listed)), "a reason is listed twice"
    missing = {r: at for r, at in found.items() if r not in listed}
    assert not missing, f"reasons set by the code but not in model/reasons.py (add them): {missing}"
    assert not set(listed) - set(found), "reasons in model/reasons.py that the code never sets"


def test_a_reason_that_leaves_ready_false_says_so() -> None:
    def subclasses(cls: type[errors.JwksError]) -> Iterator[type[errors.JwksError]]:
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    by_name = {r.name: r for r in REASONS}
    for cls in subclasses(errors.JwksError):
        reason = by_name.get(cls.reason)
        if reason is not None and not cls.ready_with_old_keys:
            assert reason.on.startswith("Ready=False"), reason


def row(reason: Reason) -> str:
    return f"| `{reason.name}` | {reason.on} | {reason.means} | {reason.todo} |"


def test_the_readme_troubleshooting_table_is_the_list() -> None:
    text = section(README.read_text(), "## Troubleshooting")
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    expected = [row(r) for r in REASONS]
    assert rows == expected, (
        "README's Troubleshooting table differs from model/reasons.py; it should read:\n"
        + ("\n".join(expected))
    )


def exported(metrics: Metrics) -> list[tuple[str, str, tuple[str, ...], str]]:
    """(name as scraped, type, labels, help) of every metric family the operator registers: the labelled
    metrics from their definition (they have no sample before their first use), the collectors' from a
    collection."""
    found: list[tuple[str, str, tuple[str, ...], str]] = []
    for collector in list(metrics.registry._collector_to_names):  # every registered collector
        if isinstance(collector, MetricWrapperBase):
            families = [(collector._name, collector._type, collector._labelnames, collector._documentation)]
        else:
            families = [(f.name, f.type, tuple(f._labelnames), f.documentation) for f in collector.collect()]  # type: ignore[attr-defined]
        for name, kind, labels, text in families:
            scraped = str(name) + ("_total" if kind == "counter" else "")
            found.append((scraped, str(kind), tuple(labels), str(text)))
    return sorted(found)


def test_the_readme_documents_every_metric() -> None:
    metrics = Metrics()
    expected = [
        f"| `{name}` | {kind} | {', '.join(f'`{label}`' for label in labels) or '-'} | {text} |"
        for name, kind, labels, text in exported(metrics)
    ]
    assert "jwks_operator_output_ready" in "".join(expected)
    text = section(README.read_text(), "## Observability")
    rows = [line for line in text.splitlines() if line.startswith("| `jwks_operator_")]
    assert sorted(rows) == expected, (
        "README's metrics table differs from runtime/metrics.py; it should read:\n" + ("\n".join(expected))
    )
