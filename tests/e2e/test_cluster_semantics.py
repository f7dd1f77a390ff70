"""API-server semantics the operator relies on, checked on whichever backend runs the suite (the
emulator must behave like the real server here): status-subresource isolation, 409 on a stale
resourceVersion, garbage collection of published objects (also of a shared target's last owner),
and namespace deletion while the operator serves it."""

from __future__ import annotations

import json
import uuid

import pytest
from kubernetes.client.exceptions import ApiException

from jwks_operator.model.names import GROUP, PLURAL, VERSION
from tests.harness.client import ClusterClient, wait_for
from tests.harness.operator import OperatorProcess
from tests.material import static_spec as static


def test_status_and_spec_are_isolated(kube: ClusterClient, ns: str) -> None:
    kube.create(ns, "iso", static("k"))
    ready = kube.wait_condition(ns, "iso")
    merge = {"_content_type": "application/merge-patch+json"}
    main = kube.custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        ns,
        PLURAL,
        "iso",
        {"status": {"keyCount": 99}, "metadata": {"labels": {"x": "y"}}},
        **merge,
    )
    assert main["metadata"]["labels"] == {"x": "y"}
    assert main["status"]["keyCount"] == ready["status"]["keyCount"] == 1, (
        "status written through the main resource"
    )
    sub = kube.custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, ns, PLURAL, "iso", {"spec": {"audiences": ["other"]}}, **merge
    )
    assert sub["spec"]["audiences"] == ["api"], "spec written through the status subresource"
    assert sub["metadata"]["generation"] == ready["metadata"]["generation"]


def test_stale_resource_version_is_a_conflict(kube: ClusterClient, ns: str) -> None:
    kube.create(ns, "rv", static("k"))
    old = kube.get(ns, "rv")
    kube.patch_spec(ns, "rv", {"audiences": ["api", "two"]})
    old["spec"]["audiences"] = ["three"]
    with pytest.raises(ApiException) as caught:
        kube.custom.replace_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "rv", old)
    assert caught.value.status == 409
    assert kube.get(ns, "rv")["spec"]["audiences"] == ["api", "two"]


def test_garbage_collection_of_outputs(kube: ClusterClient, ns: str) -> None:
    """Each JwtSecret owns its output; a shared target is owned by every contributor and collected
    only with the last one."""
    kube.create(ns, "solo", static("s"))
    for name in ("a", "b"):
        target = {"name": "shared-jwks", "shared": True, "allow": ["a", "b"]}  # whichever creates it
        kube.create(ns, name, static(name, target=target))
    for name in ("solo", "a", "b"):
        kube.wait_condition(ns, name)
    wait_for(lambda: len(kube.configmap(ns, "shared-jwks").metadata.owner_references) == 2, what="two owners")
    kube.delete(ns, "solo")
    kube.delete(ns, "a")
    wait_for(lambda: _absent(kube, ns, "solo-jwks"), what="solo's ConfigMap collected")
    wait_for(lambda: {r.name for r in kube.configmap(ns, "shared-jwks").metadata.owner_references} == {"b"},
             what="a's owner reference gone")  # fmt: skip
    data = kube.configmap(ns, "shared-jwks").data
    assert "b.jwks.json" in data
    wait_for(lambda: "a.jwks.json" not in kube.configmap(ns, "shared-jwks").data, what="a's part removed")
    merged = json.loads(kube.configmap(ns, "shared-jwks").data["jwks.json"])
    assert [k["kid"] for k in merged["keys"]] == ["b"], "a deleted contributor's key is still trusted"
    kube.delete(ns, "b")
    wait_for(
        lambda: _absent(kube, ns, "shared-jwks"), what="the shared ConfigMap collected with its last owner"
    )


def _absent(kube: ClusterClient, ns: str, name: str) -> bool:
    try:
        kube.configmap(ns, name)
    except ApiException as exc:
        return bool(exc.status == 404)
    return False


def test_namespace_deletion_while_served(kube: ClusterClient, operator: OperatorProcess) -> None:
    name = f"gone-{uuid.uuid4().hex[:6]}"
    kube.core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    kube.create(name, "doomed", static("d"))
    kube.wait_condition(name, "doomed")
    kube.core.delete_namespace(name)

    def gone() -> bool:
        try:
            kube.core.read_namespace(name)
        except ApiException as exc:
            return bool(exc.status == 404)
        return False

    wait_for(gone, 60, f"namespace {name} deleted")
    assert operator.process is not None
    assert operator.process.poll() is None, "the operator died"
    assert "Traceback" not in operator.log()
