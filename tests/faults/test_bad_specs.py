"""Bad specs rejected at the door by the CRD (schema and CEL rules), and by the operator when an API
server without CEL (older than Kubernetes 1.25, or with the feature off) lets them in."""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import config

from tests.faults.spec_table import BAD_SPECS, JWKS
from tests.faults.summary import SUMMARY
from tests.harness import ROOT
from tests.harness.client import ClusterClient, wait_for
from tests.harness.k8s import NOT_CHECKED, EmulatedCluster, apply_defaults, load_crds, prune, validate
from tests.harness.operator import OperatorProcess
from tests.material import ec_key, public_jwk

CRD = load_crds(ROOT / "crds")[0]
Obj = dict[str, Any]


def schema_of(crd: Obj) -> Obj:
    schema: Obj = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def admit(spec: Obj, schema: Obj, *, cel: bool = True) -> list[str]:
    """The messages an API server with this schema answers a create with (defaulting, pruning first);
    `cel=False`: a server without CEL, which ignores the `x-kubernetes-validations` rules."""
    obj: Obj = {"apiVersion": "jwks.dev/v1alpha1", "kind": "JwtSecret", "metadata": {"name": "bad"}}
    obj["spec"] = copy.deepcopy(spec)
    apply_defaults(obj, schema)
    prune(obj["spec"], schema["properties"]["spec"])
    return [message for _, message in validate(obj, schema, cel=cel)]


# The bad specs that only a CEL rule rejects: a server without CEL stores them.
SLIPPED = [(case, spec, text) for case, spec, text in BAD_SPECS if not admit(spec, schema_of(CRD), cel=False)]


def test_the_table_is_big_and_covers_cel() -> None:
    assert len(BAD_SPECS) >= 30
    assert len({case for case, _, _ in BAD_SPECS}) == len(BAD_SPECS)
    rules = [rule["message"] for rule in _rules(schema_of(CRD))]
    texts = [text for _, _, text in SLIPPED]
    for message in rules:  # every CEL rule is exercised by a spec only CEL rejects
        assert any(message.startswith(text) or text in message for text in texts), message
    assert len(SLIPPED) >= 10


def _rules(schema: Any) -> Iterator[Obj]:
    if isinstance(schema, dict):
        yield from schema.get("x-kubernetes-validations") or []
        for value in schema.values():
            yield from _rules(value)


def _nodes(schema: Obj, path: str) -> Iterator[tuple[str, Obj]]:
    yield path, schema
    for name, sub in (schema.get("properties") or {}).items():
        yield from _nodes(sub, f"{path}.{name}" if path else name)
    if "items" in schema:
        yield from _nodes(schema["items"], f"{path}[]")


def _bounded(schema: Obj) -> bool:
    """Whether CEL's cost estimate of this value is bounded by the schema (as Kubernetes requires)."""
    if schema["type"] == "string":
        return "maxLength" in schema or "enum" in schema
    if schema["type"] == "array":
        return "maxItems" in schema and _bounded(schema["items"])
    return True


def test_every_cel_rule_names_its_field_and_is_bounded() -> None:
    """Each rule has a message that starts with the field it reports (its location plus fieldPath;
    rules about several fields say "exactly one of ..."), and every value it reads or iterates has
    maxLength/enum or maxItems, so the API server's cost estimate stays within the limits."""
    found = 0
    for path, node in _nodes(schema_of(CRD)["properties"]["spec"], "spec"):
        for rule in node.get("x-kubernetes-validations") or []:
            found += 1
            message, field_path = rule.get("message", ""), rule.get("fieldPath", "")
            assert message.startswith((f"{path}{field_path}: ", "exactly one of ")), rule
            if field_path:
                assert field_path.lstrip(".") in node["properties"], rule
                assert f"self{field_path}" in rule["rule"], rule
            read = {name for name in node.get("properties") or {} if f"self.{name}" in rule["rule"]}
            for name in read:
                assert _bounded(node["properties"][name]), (path, name, rule)
            assert _bounded(node), (path, rule)
    assert found >= 15


@pytest.mark.parametrize(("case", "spec", "text"), BAD_SPECS, ids=[c[0] for c in BAD_SPECS])
def test_schema_and_cel_reject_with_the_field_named(case: str, spec: Obj, text: str) -> None:
    SUMMARY["specs tried"] += 1
    messages = admit(spec, schema_of(CRD))
    assert messages, f"{case}: accepted"
    assert any(text in message for message in messages), messages
    # every message names a spec field, but the one saying the CEL rules were skipped (`<nil>: ...`)
    assert all(message.startswith("spec") for message in messages if message != NOT_CHECKED), messages


def test_good_examples_pass() -> None:
    """The rules are not over-broad: every example and a spec using every field are accepted."""
    examples = [
        doc
        for path in sorted((ROOT / "examples").rglob("*.yaml"))
        for doc in load_yaml(path)
        if doc.get("kind") == "JwtSecret"
    ]
    assert len(examples) >= 4
    full = {
        "jwkUrl": "https://idp.example/jwks",
        "caBundleRef": {"kind": "Secret", "name": "ca", "key": "ca.crt"},
        "audiences": ["a", "b"],
        "issuers": ["https://idp.example/"],
        "algorithms": ["RS256", "ES256", "EdDSA"],
        "refresh": {
            "minInterval": "1m",
            "maxInterval": "1h30m",
            "fallbackInterval": "Never",
            "staleAfter": "2h",
        },
        "rotation": {"retainRemovedFor": "0s"},
        "target": {"name": "shared.keys", "shared": True},
    }
    pem = {"static": {"pem": "-----BEGIN PUBLIC KEY-----", "kid": "p"}, "algorithms": ["HS256"]}
    for spec in [*(e["spec"] for e in examples), full, pem, {"static": {"jwks": JWKS}}]:
        assert admit(spec, schema_of(CRD)) == [], spec


def load_yaml(path: Path) -> list[Obj]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.fixture(scope="module")
def old_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ClusterClient, OperatorProcess]]:
    """An API server without CEL, and the operator running against it."""
    tmp = tmp_path_factory.mktemp("no-cel")
    with EmulatedCluster(crds=[CRD], cel=False) as cluster:
        kubeconfig = cluster.write_kubeconfig(tmp / "kubeconfig")
        kube = ClusterClient(config.new_client_from_config(str(kubeconfig)))  # type: ignore[no-untyped-call]
        kube.core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "old"}})
        with OperatorProcess(kubeconfig, tmp / "operator.log", args=["--allow-private-networks"]) as operator:
            yield kube, operator


def status_of(kube: ClusterClient, name: str) -> Obj | None:
    obj = kube.get("old", name)
    status: Obj = obj.get("status") or {}
    return status if status.get("observedGeneration") == obj["metadata"]["generation"] else None


def test_specs_that_slip_past_are_reported_in_status(
    old_server: tuple[ClusterClient, OperatorProcess],
) -> None:
    kube, operator = old_server
    names = {}
    for index, (case, spec, text) in enumerate(SLIPPED):
        name = f"bad-{index}"
        kube.create("old", name, spec)  # accepted: no CEL here
        names[name] = (case, text)
    for name, (case, text) in names.items():
        status = wait_for(functools.partial(status_of, kube, name), 20, f"status of {case}")
        ready = next(c for c in status["conditions"] if c["type"] == "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec"), (case, ready)
        assert text in status["lastError"], (case, status["lastError"])
        assert text in ready["message"], (case, ready["message"])
        assert not kube.core.list_namespaced_config_map("old").items, f"{case}: something was published"
    good = {"keys": [public_jwk(ec_key(), kid="good")]}
    kube.create("old", "good", {"static": {"jwks": good}, "audiences": ["a"]})
    wait_for(lambda: (status_of(kube, "good") or {}).get("keyCount") == 1, 20, "a good spec still works")
    conditions = {c["type"]: c["status"] for c in kube.get("old", "good")["status"]["conditions"]}
    assert conditions["Ready"] == "True", conditions
    assert operator.process is not None
    assert operator.process.poll() is None, "the operator crashed"
    assert "Traceback" not in operator.log()
