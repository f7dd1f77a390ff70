"""Issue 23, item 5, end to end on the emulated cluster: a JwtSecret whose RequestAuthentication someone broke
(its spec replaced by a list) does not hold its own deletion, nor its namespace's, forever. The release
reports the problem (the output's condition, a Warning Event), tries a bounded number of times, then
removes the finalizer and records what it left behind.

Runs on a cluster of its own with a RequestAuthentication CRD that preserves any content (Istio's own
schema would refuse a list for spec, so a real server with it cannot hold such an object: emulator only).
The operator retries after 1, 2, 4 and 4 s (--retry-base 1, --retry-max 4): five attempts take ~11 s.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import config
from kubernetes.client.exceptions import ApiException

from tests.harness import ROOT
from tests.harness.client import ClusterClient, wait_for
from tests.harness.k8s import EmulatedCluster, load_crds
from tests.harness.operator import OperatorProcess
from tests.material import static_spec

pytestmark = pytest.mark.emulator_only

RA = ("security.istio.io", "v1", "requestauthentications")
ISSUER = "https://idp.example/"
PATIENCE = 90.0  # seconds to wait for what must happen (five attempts take ~11 s): never a measurement
RA_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "requestauthentications.security.istio.io"},
    "spec": {
        "group": "security.istio.io",
        "scope": "Namespaced",
        "names": {
            "kind": "RequestAuthentication",
            "plural": "requestauthentications",
            "singular": "requestauthentication",
            "listKind": "RequestAuthenticationList",
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                },
            }
        ],
    },
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ClusterClient, OperatorProcess]]:
    """A cluster with a permissive RequestAuthentication CRD, and an operator on it."""
    tmp = tmp_path_factory.mktemp("malformed")
    with EmulatedCluster(crds=[*load_crds(ROOT / "crds"), RA_CRD]) as emulated:
        path = emulated.write_kubeconfig(tmp / "kubeconfig")
        kube = ClusterClient(config.new_client_from_config(str(path)))  # type: ignore[no-untyped-call]
        args = ["--retry-base", "1", "--retry-max", "4", "--min-interval", "1"]
        with OperatorProcess(path, tmp / "operator.log", args=args) as operator:
            yield kube, operator


def namespace(kube: ClusterClient) -> str:
    name = f"broken-{uuid.uuid4().hex[:6]}"
    kube.core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def request_authentication(kube: ClusterClient, ns: str, name: str) -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = kube.custom.get_namespaced_custom_object(*RA[:2], ns, RA[2], name)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return found


def break_spec(kube: ClusterClient, ns: str, name: str) -> dict[str, Any]:
    """Replace the RequestAuthentication's spec with a list, as a hand edit might; the object as stored."""
    ra = request_authentication(kube, ns, name)
    assert ra is not None
    ra["spec"] = [{"jwtRules": "by hand"}]
    replaced: dict[str, Any] = kube.custom.replace_namespaced_custom_object(*RA[:2], ns, RA[2], name, ra)
    return replaced


def gone(read: Any) -> bool:
    try:
        read()
    except ApiException as exc:
        return bool(exc.status == 404)
    return False


def written(kube: ClusterClient, ns: str, name: str) -> bool:
    outputs = (kube.get(ns, name).get("status") or {}).get("outputs") or []
    return bool(outputs) and outputs[0]["conditions"][0]["reason"] == "Written"


def test_a_jwtsecret_deleted_while_its_request_authentication_is_malformed_goes_anyway(
    cluster: tuple[ClusterClient, OperatorProcess],
) -> None:
    kube, operator = cluster
    ns = namespace(kube)
    user_ra = {
        "apiVersion": "security.istio.io/v1",
        "kind": "RequestAuthentication",
        "metadata": {"name": "api", "annotations": {"jwks.dev/allow-jwtsecrets": "team-a"}},
        "spec": {"selector": {"matchLabels": {"app": "api"}}},
    }
    kube.custom.create_namespaced_custom_object(*RA[:2], ns, RA[2], user_ra)
    kube.create(ns, "team-a", static_spec("a", issuers=[ISSUER], outputs=[{"istio": {"name": "api"}}]))
    wait_for(lambda: written(kube, ns, "team-a"), PATIENCE, "the rule written")
    broken = break_spec(kube, ns, "api")
    kube.delete(ns, "team-a")

    def blocked() -> dict[str, Any] | None:
        outputs = (kube.get(ns, "team-a").get("status") or {}).get("outputs") or []
        ready = outputs[0]["conditions"][0] if outputs else {}
        return ready if ready.get("reason") == "MalformedObject" else None

    ready = wait_for(blocked, PATIENCE, "the problem in the output's condition")
    assert ready["message"].startswith(
        "could not remove this output: RequestAuthentication api: spec is not an object; left untouched "
        "(attempt "
    )
    wait_for(lambda: gone(lambda: kube.get(ns, "team-a")), PATIENCE, "the JwtSecret deleted anyway")

    # Events go out in their own lane, after the finalizer's removal at times: wait for them too.
    def warnings() -> list[str] | None:
        reasons = sorted(e.reason for e in kube.events(ns, "team-a") if e.type == "Warning")
        return reasons if "ReleaseAbandoned" in reasons else None

    assert wait_for(warnings, PATIENCE, "ReleaseAbandoned") == ["ReleaseAbandoned", "ReleaseBlocked"]
    (abandoned,) = [e.message for e in kube.events(ns, "team-a") if e.reason == "ReleaseAbandoned"]
    assert abandoned == (
        "output istio/api: gave up removing this JwtSecret's entries from RequestAuthentication api after 5 "
        "attempts (RequestAuthentication api: spec is not an object; left untouched): whatever it holds of "
        "them stays there; the finalizer jwks.dev/release-outputs was removed"
    )
    assert request_authentication(kube, ns, "api") == broken, "never written"
    assert operator.process is not None
    assert operator.process.poll() is None
    assert "Traceback" not in operator.log()


def test_a_namespace_is_deleted_while_a_request_authentication_in_it_is_malformed(
    cluster: tuple[ClusterClient, OperatorProcess],
) -> None:
    """The issue's case: team-a's RequestAuthentication (created by the operator) broken by hand, then the
    namespace deleted. The RequestAuthentication outlives the JwtSecret here (a finalizer of another
    controller holds it, as it would any object the namespace controller cannot delete at once), so the
    release meets it malformed at every attempt. The API server refuses new Events in a terminating
    namespace: the operator's log records what was left behind."""
    kube, operator = cluster
    ns = namespace(kube)
    spec = static_spec("a", issuers=[ISSUER], outputs=[{"istio": {"name": "api-auth"}}])
    kube.create(ns, "team-a", spec)
    wait_for(lambda: written(kube, ns, "team-a"), PATIENCE, "the RequestAuthentication created")
    ra = request_authentication(kube, ns, "api-auth")
    assert ra is not None
    ra["metadata"]["finalizers"] = ["example.com/audit"]
    ra["spec"] = [{"jwtRules": "by hand"}]
    kube.custom.replace_namespaced_custom_object(*RA[:2], ns, RA[2], "api-auth", ra)
    kube.core.delete_namespace(ns)
    wait_for(
        lambda: gone(lambda: kube.get(ns, "team-a")), PATIENCE, "the JwtSecret deleted with its namespace"
    )
    assert (
        "gave up removing this JwtSecret's entries from RequestAuthentication api-auth after 5"
        in operator.log()
    )
    held = request_authentication(kube, ns, "api-auth")
    assert held is not None
    assert held["spec"] == [{"jwtRules": "by hand"}], "never written"
    held["metadata"]["finalizers"] = []  # its controller lets it go
    kube.custom.replace_namespaced_custom_object(*RA[:2], ns, RA[2], "api-auth", held)
    wait_for(lambda: gone(lambda: kube.core.read_namespace(ns)), PATIENCE, f"namespace {ns} deleted")
    assert operator.process is not None
    assert operator.process.poll() is None
    assert "Traceback" not in operator.log()
