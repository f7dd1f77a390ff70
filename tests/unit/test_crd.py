"""The CRD is structural, documented, and declares every status field the operator writes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from jwks_operator.keys.keyset import KeySet, Rejection
from jwks_operator.model.errors import FetchError
from jwks_operator.resource.status import Outcome, OutputStatus, build_status
from tests.harness.k8s import prune

CRD = yaml.safe_load((Path(__file__).resolve().parents[2] / "crds" / "jwtsecrets.jwks.dev.yaml").read_text())
VERSION = CRD["spec"]["versions"][0]
SCHEMA = VERSION["schema"]["openAPIV3Schema"]


def walk(schema: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
    nodes = [(path, schema)]
    for name, sub in (schema.get("properties") or {}).items():
        nodes += walk(sub, f"{path}.{name}")
    if "items" in schema:
        nodes += walk(schema["items"], f"{path}[]")
    return nodes


def test_names_and_versions() -> None:
    assert CRD["metadata"]["name"] == "jwtsecrets.jwks.dev"
    assert CRD["spec"]["names"]["shortNames"] == ["jwts"]
    assert CRD["spec"]["scope"] == "Namespaced"
    assert VERSION["name"] == "v1alpha1"
    assert VERSION["subresources"] == {"status": {}}


def test_every_field_is_typed_and_described() -> None:
    nodes = walk(SCHEMA, "")
    untyped = [p for p, n in nodes if "type" not in n]
    undocumented = [p for p, n in nodes if "description" not in n and p not in (".metadata", "")]
    assert untyped == []
    assert undocumented == []


def test_printer_columns() -> None:
    columns = {c["name"]: c for c in VERSION["additionalPrinterColumns"]}
    assert list(columns) == ["Source", "Ready", "Keys", "Keys Since", "Age", "Refresh", "Message"]
    assert [c.get("priority", 0) for c in columns.values()] == [0, 0, 0, 0, 0, 1, 1]


def test_everything_the_operator_writes_survives_pruning() -> None:
    keys = KeySet(({"kty": "RSA", "kid": "a", "alg": "RS256", "use": "sig"},), (Rejection(1, "b", "bad"),))
    now = datetime.now(UTC)
    outputs = (
        OutputStatus("kong/c", "Secret", ("a-kong-1", "KongConsumer/c"), True, "Written", "1 key(s)"),
        OutputStatus("istio/api", "RequestAuthentication", (), False, "NotFound", "absent"),
    )
    basis = ("Fallback", "no caching headers")
    outcome = Outcome(
        "u", 3, "ConfigMap", "x", keys, FetchError("HTTP 500"), now, basis, failures=2, outputs=outputs
    )
    status = build_status(outcome, None, now)
    assert len(status["outputs"]) == 2
    pruned = {"status": yaml.safe_load(yaml.safe_dump(status))}
    prune(pruned["status"], SCHEMA["properties"]["status"])
    assert pruned["status"] == status
