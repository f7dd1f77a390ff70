"""The mutants of one module (pure): where each operator applies, and the mutated tree of one mutant.

Operators: `compare` (a comparison negated: == and !=, < and >=, in and not in, is and is not),
`boundary` (< and <=, > and >=), `boolop` (and and or), `operand` (one operand of and/or dropped),
`not` (a `not` removed), `bool` (True and False), `number` (n to n + 1), `string` (a word changed:
strings holding whitespace are prose, messages, and are left alone), `arith` (+ and -, * and /, <<
and >>, & and |...), `condition` (an if or a conditional expression forced true, or false; a
comprehension's filter removed), `loop` (continue and break), `return` (a returned value replaced by
None) and `statement` (a call, raise, augmented or item/attribute assignment, or del removed).

Never mutated: docstrings, annotations, decorators, imports, f-strings (messages), `__all__` and
`if TYPE_CHECKING:` blocks. A mutant's id names the file, the enclosing function, the operator and a
digest of the original and mutated code, never a line number: it survives edits elsewhere.
"""

from __future__ import annotations

import ast
import copy
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

Step = tuple[str, int | None]  # a field of the parent node, and the position in it when it is a list
NodePath = tuple[Step, ...]

NEGATED: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Lt: ast.GtE,
    ast.GtE: ast.Lt,
    ast.Gt: ast.LtE,
    ast.LtE: ast.Gt,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
BOUNDARY: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
}
ARITH: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Mult,
    ast.Mod: ast.FloorDiv,
    ast.Pow: ast.Mult,
    ast.LShift: ast.RShift,
    ast.RShift: ast.LShift,
    ast.BitAnd: ast.BitOr,
    ast.BitOr: ast.BitAnd,
    ast.BitXor: ast.BitAnd,
}
OPERATORS = (
    "compare",
    "boundary",
    "boolop",
    "operand",
    "not",
    "bool",
    "number",
    "string",
    "arith",
    "condition",
    "loop",
    "return",
    "statement",
)
_SKIPPED_FIELDS = frozenset({"annotation", "returns", "decorator_list", "type_comment", "type_params"})


@dataclass(frozen=True)
class Site:
    """One mutant: where (the path from the module node), what, and how it reads."""

    id: str
    qualname: str
    operator: str
    path: NodePath
    variant: int  # which of the node's replacements (in `replacements` order)
    line: int
    original: str  # the source line, stripped
    mutated: str  # the same line with the mutation applied (or the mutated code, if it spans lines)


def in_scope(qualname: str, functions: Sequence[str] | None) -> bool:
    """Whether code of `qualname` (e.g. `shared.mutate`) is mutated: every function when `functions`
    is None, else those matching a pattern (fnmatch) and everything nested in them."""
    if functions is None:
        return True
    parts = qualname.split(".")
    prefixes = [".".join(parts[: n + 1]) for n in range(len(parts))]
    return any(fnmatchcase(prefix, pattern) for prefix in prefixes for pattern in functions)


def _is_prose(text: str) -> bool:
    return any(c.isspace() for c in text)


def _const(value: bool | float | str | None, like: ast.AST) -> ast.expr:
    return ast.copy_location(ast.Constant(value=value), like)


def replacements(node: ast.AST, step: Step | None = None) -> list[tuple[str, ast.AST]]:
    """Every (operator, replacement node) for one node (`step`: where its parent holds it), in a fixed
    order. An If's or IfExp's replacements are of its test."""
    out: list[tuple[str, ast.AST]] = []
    if step is not None and step[0] == "ifs":  # a comprehension's filter removed
        out.append(("condition", _const(True, node)))
    if isinstance(node, ast.Compare):
        for index, op in enumerate(node.ops):
            for name, table in (("compare", NEGATED), ("boundary", BOUNDARY)):
                if type(op) in table:
                    changed = copy.deepcopy(node)
                    changed.ops[index] = table[type(op)]()
                    out.append((name, changed))
    elif isinstance(node, ast.BoolOp):
        flipped = copy.deepcopy(node)
        flipped.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        out.append(("boolop", flipped))
        for index in range(len(node.values)):
            rest = [copy.deepcopy(v) for i, v in enumerate(node.values) if i != index]
            kept = rest[0] if len(rest) == 1 else ast.copy_location(ast.BoolOp(op=node.op, values=rest), node)
            out.append(("operand", kept))
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        out.append(("not", copy.deepcopy(node.operand)))
    elif isinstance(node, ast.Constant):
        out.extend(_constant(node))
    elif isinstance(node, ast.BinOp) and type(node.op) in ARITH:
        changed_op = copy.deepcopy(node)
        changed_op.op = ARITH[type(node.op)]()
        out.append(("arith", changed_op))
    elif isinstance(node, ast.If | ast.IfExp):
        out.append(("condition", _const(True, node.test)))
        out.append(("condition", _const(False, node.test)))
    elif isinstance(node, ast.Continue):
        out.append(("loop", ast.copy_location(ast.Break(), node)))
    elif isinstance(node, ast.Break):
        out.append(("loop", ast.copy_location(ast.Continue(), node)))
    elif isinstance(node, ast.Return) and node.value is not None and not _is_none(node.value):
        out.append(("return", ast.copy_location(ast.Return(value=_const(None, node.value)), node)))
    if _removable(node):
        out.append(("statement", ast.copy_location(ast.Pass(), node)))
    return out


def _constant(node: ast.Constant) -> list[tuple[str, ast.AST]]:
    value = node.value
    if isinstance(value, bool):
        return [("bool", _const(not value, node))]
    if isinstance(value, int | float):
        return [("number", _const(value + 1, node))]
    if isinstance(value, str) and not _is_prose(value):
        return [("string", _const(f"XX{value}XX" if value else "XX", node))]
    return []


def _is_none(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def _removable(node: ast.AST) -> bool:
    if isinstance(node, ast.Expr):
        return not isinstance(node.value, ast.Constant)  # docstrings and `...` are skipped anyway
    if isinstance(node, ast.Assign):
        return not all(isinstance(t, ast.Name) for t in node.targets)
    return isinstance(node, ast.Raise | ast.AugAssign | ast.Delete)


def _where(node: ast.AST) -> str:
    """Which part of an If or IfExp a replacement goes to (the test), else the node itself."""
    return "test" if isinstance(node, ast.If | ast.IfExp) else ""


def _children(node: ast.AST) -> Iterator[tuple[Step, ast.AST]]:
    for name, value in ast.iter_fields(node):
        if name in _SKIPPED_FIELDS:
            continue
        if isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, ast.AST):
                    yield (name, index), item
        elif isinstance(value, ast.AST):
            yield (name, None), value


def _skipped(node: ast.AST, parent: ast.AST | None, step: Step | None) -> bool:
    if isinstance(node, ast.JoinedStr | ast.Import | ast.ImportFrom):
        return True
    if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
        return True
    if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
        return True
    docstring_owner = ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
    return (
        isinstance(parent, docstring_owner)
        and step == ("body", 0)
        and isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


def _walk(
    node: ast.AST, path: NodePath, qualname: str, parent: ast.AST | None = None
) -> Iterator[tuple[ast.AST, NodePath, str]]:
    step = path[-1] if path else None
    if _skipped(node, parent, step):
        return
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        qualname = node.name if qualname == "<module>" else f"{qualname}.{node.name}"
    yield node, path, qualname
    for child_step, child in _children(node):
        yield from _walk(child, (*path, child_step), qualname, node)


def _digest(operator: str, node: ast.AST, replacement: ast.AST) -> str:
    text = f"{operator}|{ast.dump(node)}|{ast.dump(replacement)}"
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:8]


def sites(source: str, relpath: str, functions: Sequence[str] | None = None) -> list[Site]:
    """Every mutant of a module's source, in source order; `functions` as for in_scope."""
    tree = ast.parse(source)
    lines = source.splitlines()
    found: list[Site] = []
    seen: dict[str, int] = {}
    for node, path, qualname in _walk(tree, (), "<module>"):
        if not in_scope(qualname, functions):
            continue
        target = getattr(node, _where(node)) if _where(node) else node
        for variant, (operator, replacement) in enumerate(replacements(node, path[-1] if path else None)):
            base = f"{relpath}::{qualname}::{operator}::{_digest(operator, target, replacement)}"
            count = seen.get(base, 0)
            seen[base] = count + 1
            line = getattr(target, "lineno", 1)
            found.append(
                Site(
                    id=base if count == 0 else f"{base}#{count}",
                    qualname=qualname,
                    operator=operator,
                    path=path,
                    variant=variant,
                    line=line,
                    original=lines[line - 1].strip(),
                    mutated=_mutated_line(lines, target, replacement),
                )
            )
    return found


def _at(tree: ast.AST, path: NodePath) -> ast.AST:
    node = tree
    for name, index in path:
        value = getattr(node, name)
        node = value[index] if index is not None else value
    return node


def _mutated_line(lines: Sequence[str], node: ast.AST, replacement: ast.AST) -> str:
    text = "pass" if isinstance(replacement, ast.Pass) else ast.unparse(replacement)
    start, end = getattr(node, "lineno", 0), getattr(node, "end_lineno", 0)
    if not start or start != end:
        return text.splitlines()[0] if text else text
    raw = lines[start - 1].encode()
    begin, stop = getattr(node, "col_offset", 0), getattr(node, "end_col_offset", len(raw))
    return (raw[:begin].decode() + text + raw[stop:].decode()).strip()


def mutated_tree(source: str, site: Site) -> ast.Module:
    """The module's tree with one mutant applied, ready to compile (line numbers kept)."""
    tree = ast.parse(source)
    *parents, (name, index) = site.path
    holder = _at(tree, tuple(parents))
    original = _at(tree, site.path)
    replacement = replacements(original, site.path[-1])[site.variant][1]
    where = _where(original)
    if where:
        changed = copy.deepcopy(original)
        setattr(changed, where, replacement)
        replacement = changed
    if index is None:
        setattr(holder, name, replacement)
    else:
        getattr(holder, name)[index] = replacement
    return ast.fix_missing_locations(tree)
