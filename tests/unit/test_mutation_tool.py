"""tools/mutation: which mutants a module has, their stable ids, how one is applied, the equivalents file
and the table (the pure parts; running mutants is `make mutation`)."""

from __future__ import annotations

import ast
import textwrap

import pytest
from tools.mutation import results
from tools.mutation.__main__ import Module, survivors, table
from tools.mutation.operators import Site, in_scope, mutated_tree, sites
from tools.mutation.scope import ROOT, TARGETS, Target

SOURCE = textwrap.dedent(
    '''
    """Module docstring."""
    from typing import TYPE_CHECKING

    if TYPE_CHECKING:
        from os import PathLike

    __all__ = ["check"]
    LIMIT = 10


    def check(value: int, names: list[str] = []) -> str:
        """Docstring."""
        if value > LIMIT and not names:
            raise ValueError(f"value {value} over {LIMIT}")
        for name in names:
            if name == "skip":
                continue
        return "ok" if value else ""
    '''
)


def operators_at(found: list[Site], line_text: str) -> list[tuple[str, str]]:
    return [(s.operator, s.mutated) for s in found if s.original == line_text]


def test_each_operator_where_it_applies() -> None:
    found = sites(SOURCE, "m.py")
    assert operators_at(found, "LIMIT = 10") == [("number", "LIMIT = 11")]
    assert operators_at(found, "if value > LIMIT and not names:") == [
        ("condition", "if True:"),
        ("condition", "if False:"),
        ("boolop", "if value > LIMIT or not names:"),
        ("operand", "if not names:"),
        ("operand", "if value > LIMIT:"),
        ("compare", "if value <= LIMIT and not names:"),
        ("boundary", "if value >= LIMIT and not names:"),
        ("not", "if value > LIMIT and names:"),
    ]
    assert operators_at(found, 'raise ValueError(f"value {value} over {LIMIT}")') == [("statement", "pass")]
    assert operators_at(found, "continue") == [("loop", "break")]
    assert ("string", "if name == 'XXskipXX':") in operators_at(found, 'if name == "skip":')
    assert operators_at(found, 'return "ok" if value else ""') == [
        ("return", "return None"),
        ("condition", 'return "ok" if True else ""'),
        ("condition", 'return "ok" if False else ""'),
        ("string", "return 'XXokXX' if value else \"\""),
        ("string", "return \"ok\" if value else 'XX'"),
    ]


def test_what_is_never_mutated() -> None:
    """Docstrings, TYPE_CHECKING imports, __all__, annotations, defaults' types, f-strings (messages)."""
    found = sites(SOURCE, "m.py")
    never = ['"""Module docstring."""', '"""Docstring."""', "if TYPE_CHECKING:", "from os import PathLike"]
    assert not {s.original for s in found} & {*never, '__all__ = ["check"]'}
    assert [s.operator for s in found if "ValueError" in s.original] == ["statement"]
    assert not [s for s in found if "def check" in s.original and s.operator != "string"]


def test_prose_strings_are_left_alone() -> None:
    found = sites('MESSAGE = "a sentence"\nKEY = "kid"\n', "m.py")
    assert [(s.operator, s.mutated) for s in found] == [("string", "KEY = 'XXkidXX'")]


def test_ids_do_not_move_with_the_lines() -> None:
    before = [s.id for s in sites(SOURCE, "m.py")]
    after = [s.id for s in sites("\n\n# a comment\n" + SOURCE, "m.py")]
    assert before == after
    assert len(set(before)) == len(before)
    assert before[0].startswith("m.py::<module>::number::")


def test_repeated_mutants_in_one_function_are_numbered() -> None:
    found = sites("def f(a):\n    return a + 1, a + 1\n", "m.py")
    ids = [s.id for s in found if s.operator == "arith"]
    assert ids[1] == ids[0] + "#1"


@pytest.mark.parametrize(
    ("qualname", "functions", "mutated"),
    [
        ("shared", None, True),
        ("shared", ("shared",), True),
        ("shared.mutate.member", ("shared",), True),
        ("owned", ("shared",), False),
        ("_publish.mutate", ("*.mutate",), True),
        ("_publish", ("*.mutate",), False),
        ("ProjectWrite.__call__", ("*.mutate", "*.__call__"), True),
        ("<module>", ("check_*",), False),
    ],
)
def test_in_scope(qualname: str, functions: tuple[str, ...] | None, mutated: bool) -> None:
    assert in_scope(qualname, functions) is mutated


def test_a_mutant_applied_changes_that_node_only() -> None:
    found = sites(SOURCE, "m.py")
    (loop,) = [s for s in found if s.operator == "loop"]
    tree = mutated_tree(SOURCE, loop)
    assert ast.unparse(tree) == ast.unparse(ast.parse(SOURCE)).replace("continue", "break")
    namespace: dict[str, object] = {}
    exec(compile(tree, "m.py", "exec"), namespace)
    (limit,) = [s for s in found if s.original == "LIMIT = 10"]
    namespace = {}
    exec(compile(mutated_tree(SOURCE, limit), "m.py", "exec"), namespace)
    assert namespace["LIMIT"] == 11


def test_every_mutant_of_a_real_module_compiles() -> None:
    (target,) = [t for t in TARGETS if t.name == "model/freshness.py"]
    source = (ROOT / target.path).read_text()
    for site in sites(source, target.name, target.functions):
        compile(mutated_tree(source, site), target.path, "exec")


def test_equivalents_need_a_reason() -> None:
    assert results.parse_equivalents("# comment\n\na::b::c::d  # because\n") == {"a::b::c::d": "because"}
    with pytest.raises(ValueError, match="line 1"):
        results.parse_equivalents("a::b::c::d\n")
    with pytest.raises(ValueError, match="line 2"):
        results.parse_equivalents("a  # x\nb  #  \n")


def test_table_and_survivors() -> None:
    target = Target("operator/jwks_operator/m.py", ("tests/unit",))
    found = sites("X = 1\nY = 2\nZ = 3\n", target.name)
    module = Module(target, "", found, {}, {found[0].id: "killed", found[1].id: "survived"})
    module.verdicts[found[2].id] = "equivalent"
    assert table([module]).splitlines() == [
        "module  mutants  killed  survived  equivalent   score",
        "m.py          3       1         1           1  50.0 %",
        "total         3       1         1           1  50.0 %",
    ]
    assert survivors([module]) == [
        f"operator/jwks_operator/m.py:2  number: Y = 2  ->  Y = 3  [{found[1].id}]"
    ]
