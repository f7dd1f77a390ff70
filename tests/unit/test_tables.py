"""What the CRD repeats of the operator's tables (algorithms, key types, private members, patterns) agrees."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from jwks_operator.keys import keyset as keys
from jwks_operator.model import durations
from jwks_operator.resource import spec

CRD = yaml.safe_load((Path(__file__).resolve().parents[2] / "crds" / "jwtsecrets.jwks.dev.yaml").read_text())
SPEC = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
JWKS_KEYS = SPEC["properties"]["static"]["properties"]["jwks"]["properties"]["keys"]


def nodes(schema: Any) -> Iterator[dict[str, Any]]:
    if isinstance(schema, dict):
        yield schema
        for value in schema.values():
            yield from nodes(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from nodes(value)


def test_the_crd_algorithms_are_the_table_algorithms_in_its_order() -> None:
    algorithms = SPEC["properties"]["algorithms"]
    assert algorithms["items"]["enum"] == list(keys.ALGORITHMS)
    assert algorithms["maxItems"] == len(keys.ALGORITHMS)  # a set of the enum: every one at most once


def test_the_crd_hs_rule_names_the_hmac_algorithms() -> None:
    rules = [r["rule"] for r in SPEC["x-kubernetes-validations"] if "startsWith('HS')" in r["rule"]]
    assert len(rules) == 1
    assert {a for a in keys.ALGORITHMS if a.startswith("HS")} == keys.HMAC_ALGS == keys.ALGS_BY_KTY["oct"]


def test_the_crd_key_types_are_the_asymmetric_ones_of_the_table() -> None:
    kty = JWKS_KEYS["items"]["properties"]["kty"]["enum"]
    assert (
        set(kty)
        == {s.kty for s in keys.ALGORITHM_TABLE.values()} - {"oct"}
        == set(keys.PUBLIC_MEMBERS) - {"oct"}
    )


def test_the_crd_private_members_rule_is_the_python_list() -> None:
    (rule,) = [r for r in JWKS_KEYS["x-kubernetes-validations"] if "has(k.d)" in r["rule"]]
    in_rule = tuple(re.findall(r"!has\(k\.(\w+)\)", rule["rule"]))
    (listed,) = re.findall(r"private key members \(([^)]*)\)", rule["message"])
    assert in_rule == tuple(listed.split(", ")) == spec.CRD_PRIVATE_MEMBERS
    # CEL sees declared properties only: the CRD declares each member it checks, and leaves out only `oth`.
    declared = set(JWKS_KEYS["items"]["properties"])
    assert set(spec.CRD_PRIVATE_MEMBERS) <= declared
    assert set(keys.PRIVATE_MEMBERS) - set(spec.CRD_PRIVATE_MEMBERS) == {"oth"}
    assert "oth" not in declared, "declare oth and the rule can check it: drop the exception in spec.py"


def test_the_crd_patterns_are_the_parser_patterns() -> None:
    patterns = [n["pattern"] for n in nodes(SPEC) if "pattern" in n and "ms|s|m|h" in n["pattern"]]
    never = "^(Never|" + durations.PATTERN.removeprefix("^").removesuffix("$") + ")$"  # fallbackInterval
    assert sorted(set(patterns)) == sorted({durations.PATTERN, never})
    assert len(patterns) == 5
    url = SPEC["properties"]["jwkUrl"]
    assert (url["pattern"], url["maxLength"]) == (spec._URL_RE.pattern, spec.MAX_URL_LENGTH)


def test_the_crd_object_name_patterns_are_the_parser_pattern() -> None:
    static = SPEC["properties"]["static"]["properties"]
    for name in (
        static["secretRef"]["properties"]["name"],
        SPEC["properties"]["caBundleRef"]["properties"]["name"],
    ):
        assert (name["pattern"], name["maxLength"]) == (spec.OBJECT_NAME_RE.pattern, spec.MAX_OBJECT_NAME)
