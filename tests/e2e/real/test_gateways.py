"""All five gateway outputs of one JwtSecret on the real control plane, judged by the gateways' own CRDs
(Istio's, Envoy Gateway's and Kong's, from their Go modules) and by Istio's own validation code.

The operator runs as deploy/'s ServiceAccount plus the rules the chart grants with every
`outputs.<gateway>.enabled` flag on (the ClusterRole OUTPUT_ROLE, read back by test_rbac).
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml
from kubernetes.client.exceptions import ApiException

from jwks_operator.publish.gateways.envoygateway import closed_jwks
from tests.deploy.render import documents, template
from tests.e2e.test_rbac import OUTPUT_ROLE
from tests.harness.backend import OPERATOR_NAMESPACE, OPERATOR_SA
from tests.harness.client import ClusterClient, wait_for
from tests.harness.control_plane import RealCluster
from tests.harness.gomod import gateway_crds, istio_validator
from tests.harness.idp import JwksProvider
from tests.harness.operator import OperatorProcess
from tests.harness.tools import kubectl
from tests.material import static_spec

SPACE = "space-cloud"  # Space Cloud keeps project ConfigMaps in this namespace
PROJECT_CM = "default--shop--project--shop"
ISSUER = "https://idp.test/"
AUDIENCE = "shop-api"
ISTIO = ("security.istio.io", "v1", "requestauthentications")
ENVOY = ("gateway.envoyproxy.io", "v1alpha1", "securitypolicies")
KONG = ("configuration.konghq.com", "v1", "kongconsumers")
PATIENCE = 60.0
ALLOW = {"jwks.dev/allow-jwtsecrets": "shop"}  # each shared object's owner lets JwtSecret shop in


@pytest.fixture(scope="module")
def gateways(cluster: RealCluster | None, kubeconfig: Path, operator: OperatorProcess) -> Iterator[Path]:
    """The gateways' CRDs installed, the chart's output rules granted, namespace space-cloud made."""
    assert isinstance(cluster, RealCluster), "the real tier needs JWKS_BACKEND=real"
    cluster.install(gateway_crds())
    role = next(d for d in documents(template(ALL_OUTPUTS)) if d["kind"] == "ClusterRole")
    base = next(d for d in documents(template()) if d["kind"] == "ClusterRole")
    extra = [rule for rule in role["rules"] if rule not in base["rules"]]
    assert extra, "the chart grants nothing for the gateway outputs"
    rbac = [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": OUTPUT_ROLE},
            "rules": extra,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": OUTPUT_ROLE},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": OUTPUT_ROLE},
            "subjects": [{"kind": "ServiceAccount", "name": OPERATOR_SA, "namespace": OPERATOR_NAMESPACE}],
        },
    ]
    kubectl(kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump_all(rbac))
    kubectl(kubeconfig, "create", "namespace", SPACE)
    yield kubeconfig
    kubectl(kubeconfig, "delete", "namespace", SPACE, "--wait=false")


ALL_OUTPUTS = {
    "outputs": {g: {"enabled": True} for g in ("istio", "envoyGateway", "spaceCloud", "kong", "nginx")}
}


def custom(kube: ClusterClient, what: tuple[str, str, str], name: str) -> dict[str, Any]:
    found: dict[str, Any] = kube.custom.get_namespaced_custom_object(*what[:2], SPACE, what[2], name)
    return found


def secret_text(kube: ClusterClient, name: str, key: str) -> str:
    return base64.b64decode(kube.core.read_namespaced_secret(name, SPACE).data[key]).decode()


def prerequisites(kube: ClusterClient) -> None:
    """What the platform team and Space Cloud made before the JwtSecret: a SecurityPolicy (its targetRefs
    pick the routes), a KongConsumer, and Space Cloud's project ConfigMap with an admin secret of its own."""
    kube.custom.create_namespaced_custom_object(
        *ENVOY[:2],
        SPACE,
        ENVOY[2],
        {
            "apiVersion": "gateway.envoyproxy.io/v1alpha1",
            "kind": "SecurityPolicy",
            "metadata": {"name": "edge", "annotations": ALLOW},
            "spec": {
                "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "shop"}]
            },
        },
    )
    kube.custom.create_namespaced_custom_object(
        *KONG[:2],
        SPACE,
        KONG[2],
        {
            "apiVersion": "configuration.konghq.com/v1",
            "kind": "KongConsumer",
            "metadata": {
                "name": "shop-client",
                "annotations": {"kubernetes.io/ingress.class": "kong", **ALLOW},
            },
            "username": "shop-client",
        },
    )
    admin = {
        "isPrimary": True,
        "alg": "HS256",
        "kid": "sc-admin",
        "secret": "their-own",
        "aud": [],
        "iss": [],
    }
    config = {"id": "shop", "name": "shop", "secretSource": "", "secrets": [admin], "contextTimeGraphQL": 10}
    kube.core.create_namespaced_config_map(
        SPACE,
        {
            "metadata": {
                "name": PROJECT_CM,
                "annotations": ALLOW,
                "labels": {"kind": "project", "projectId": "shop", "clusterId": "default"},
            },
            "data": {"id": "default--shop--project--shop", "data": json.dumps(config)},
        },
    )


def spec(url: str) -> dict[str, Any]:
    return {
        "jwkUrl": url,
        "issuers": [ISSUER],
        "audiences": [AUDIENCE],
        "outputs": [
            {"istio": {"name": "shop", "selector": {"matchLabels": {"app": "shop"}}}},
            {"envoyGateway": {"securityPolicy": "edge"}},
            {"spaceCloud": {"projectId": "shop"}},
            {"kong": {"consumer": "shop-client"}},
            {"nginx": {}},
        ],
    }


def kids_everywhere(kube: ClusterClient) -> dict[str, list[str]]:
    """The kids each gateway's object holds now."""
    rules = custom(kube, ISTIO, "shop")["spec"]["jwtRules"]
    config = json.loads(kube.configmap(SPACE, PROJECT_CM).data["data"])
    consumer = custom(kube, KONG, "shop-client")
    kong = [secret_text(kube, name, "key") for name in consumer.get("credentials") or []]
    return {
        "configmap": [k["kid"] for k in json.loads(kube.configmap(SPACE, "shop-jwks").data["jwks"])["keys"]],
        "istio": [k["kid"] for r in rules for k in json.loads(r["jwks"])["keys"]],
        "spaceCloud": [s["kid"] for s in config["secrets"] if s["alg"] == "RS256_PUBLIC"],
        "kong": sorted(kong),
        "nginx": [k["kid"] for k in json.loads(secret_text(kube, "shop-jwk", "jwk"))["keys"]],
    }


def ready_outputs(kube: ClusterClient) -> list[str] | None:
    outputs = (kube.get(SPACE, "shop").get("status") or {}).get("outputs") or []
    ready = [o["output"] for o in outputs if o["conditions"][0]["status"] == "True"]
    return ready if len(ready) == 5 else None


def test_all_five_outputs_are_written_accepted_rotated_and_withdrawn(
    gateways: Path, kube: ClusterClient, ca: trustme.CA, tmp_path: Path
) -> None:
    prerequisites(kube)
    with JwksProvider(ca=ca, max_age=2) as idp:
        first = idp.keys[0]
        kube.create(SPACE, "shop", spec(idp.url))
        kube.wait_condition(SPACE, "shop", timeout=PATIENCE)
        wait_for(lambda: ready_outputs(kube), timeout=PATIENCE, what="every output written")
        assert kids_everywhere(kube) == {
            g: [first] for g in ("configmap", "istio", "spaceCloud", "kong", "nginx")
        }

        ra = custom(kube, ISTIO, "shop")
        assert ra["spec"]["selector"] == {"matchLabels": {"app": "shop"}}
        assert [(r["issuer"], r["audiences"]) for r in ra["spec"]["jwtRules"]] == [(ISSUER, [AUDIENCE])]
        path = tmp_path / "ra.json"
        path.write_text(json.dumps(ra))
        verdict = subprocess.run(
            [str(istio_validator()), str(path)], capture_output=True, text=True, check=False
        )
        assert verdict.returncode == 0, verdict.stdout + verdict.stderr
        assert json.loads(verdict.stdout)["keys"] == [1], "Istio reads our one key"

        provider = custom(kube, ENVOY, "edge")["spec"]["jwt"]["providers"]
        assert provider[0]["localJWKS"] == {
            "type": "ValueRef",
            "valueRef": {"group": "", "kind": "ConfigMap", "name": "shop-jwks"},
        }
        assert (provider[0]["issuer"], provider[0]["audiences"]) == (ISSUER, [AUDIENCE])
        config = json.loads(kube.configmap(SPACE, PROJECT_CM).data["data"])
        assert config["secrets"][0]["kid"] == "sc-admin", "Space Cloud's own secret stays first and untouched"
        ours = config["secrets"][1]
        assert (ours["isPrimary"], ours["aud"], ours["iss"]) == (False, [AUDIENCE], [ISSUER])
        assert ours["publicKey"].startswith("-----BEGIN PUBLIC KEY-----")
        nginx = kube.core.read_namespaced_secret("shop-jwk", SPACE)
        assert nginx.type == "nginx.org/jwk"

        second = idp.rotate()
        idp.retire(first)
        wait_for(
            lambda: (
                kids_everywhere(kube)
                == {g: [second] for g in ("configmap", "istio", "spaceCloud", "kong", "nginx")}
            ),
            timeout=PATIENCE,
            what="the rotation in every output",
        )

        kube.delete(SPACE, "shop")

        def withdrawn() -> bool:
            config = json.loads(kube.configmap(SPACE, PROJECT_CM).data["data"])
            policy = custom(kube, ENVOY, "edge")["spec"]
            consumer = custom(kube, KONG, "shop-client")
            return (
                [s["kid"] for s in config["secrets"]] == ["sc-admin"]
                and closed(policy)
                and not consumer.get("credentials")
            )

        wait_for(withdrawn, timeout=PATIENCE, what="our entries out of the shared objects")
        wait_for(
            lambda: not kube.custom.list_namespaced_custom_object(*ISTIO[:2], SPACE, ISTIO[2])["items"],
            timeout=PATIENCE,
            what="the RequestAuthentication we made deleted",
        )


def test_a_jwtsecret_deleted_while_the_operator_is_down_is_released_when_it_is_back(
    gateways: Path, kube: ClusterClient, ca: trustme.CA, operator: OperatorProcess
) -> None:
    policy = {
        "apiVersion": "gateway.envoyproxy.io/v1alpha1",
        "kind": "SecurityPolicy",
        "metadata": {"name": "late", "annotations": {"jwks.dev/allow-jwtsecrets": "late"}},
        "spec": {"targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "late"}]},
    }
    kube.custom.create_namespaced_custom_object(*ENVOY[:2], SPACE, ENVOY[2], policy)
    with JwksProvider(ca=ca, max_age=30) as idp:
        spec = {"jwkUrl": idp.url, "issuers": [ISSUER], "audiences": [AUDIENCE]}
        kube.create(SPACE, "late", {**spec, "outputs": [{"envoyGateway": {"securityPolicy": "late"}}]})
        wait_for(lambda: custom(kube, ENVOY, "late")["spec"].get("jwt"), timeout=PATIENCE, what="provider")
        assert kube.get(SPACE, "late")["metadata"]["finalizers"] == ["jwks.dev/release-outputs"]
        operator.stop()
        try:
            kube.delete(SPACE, "late")
            time.sleep(1)
            held = kube.get(SPACE, "late")
            assert held["metadata"]["deletionTimestamp"], "the finalizer holds it while no operator runs"
            assert custom(kube, ENVOY, "late")["spec"].get("jwt"), "still trusted: nobody took it out yet"
        finally:
            operator.start()
        wait_for(lambda: closed(custom(kube, ENVOY, "late")["spec"]), timeout=PATIENCE, what="released")
        wait_for(lambda: not gone_or_none(kube, "late"), timeout=PATIENCE, what="the JwtSecret gone")


def gone_or_none(kube: ClusterClient, name: str) -> dict[str, Any] | None:
    """The JwtSecret, or None once it is gone."""
    try:
        return kube.get(SPACE, name)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def output_condition(kube: ClusterClient, name: str, reason: str) -> dict[str, Any] | None:
    """The OutputReady condition of a JwtSecret's first output, once it has this reason."""
    outputs = (kube.get(SPACE, name).get("status") or {}).get("outputs") or []
    found: dict[str, Any] | None = outputs[0]["conditions"][0] if outputs else None
    return found if found is not None and found["reason"] == reason else None


def test_an_operator_made_request_authentication_admits_no_one_unasked_and_keeps_a_users_rule(
    gateways: Path, kube: ClusterClient
) -> None:
    """Issue 23, items 1 and 2 on Istio's own CRD: another JwtSecret naming team-a's RequestAuthentication
    gets NotAllowed and adds nothing; a rule a user adds for team-a's issuer survives team-a's release,
    byte for byte (the object is then the user's)."""
    output = [{"istio": {"name": "team-a-auth", "selector": {"matchLabels": {"app": "payments"}}}}]
    kube.create(SPACE, "team-a", static_spec("a", issuers=[ISSUER], outputs=output))
    wait_for(lambda: output_condition(kube, "team-a", "Written"), PATIENCE, what="team-a's rule written")
    evil = [{"istio": {"name": "team-a-auth"}}]
    kube.create(SPACE, "intruder", static_spec("evil", issuers=["https://evil.example/"], outputs=evil))
    refused = wait_for(lambda: output_condition(kube, "intruder", "NotAllowed"), PATIENCE, what="refused")
    assert "team-a's spec.outputs[].istio.allow must list intruder" in refused["message"]
    ra = custom(kube, ISTIO, "team-a-auth")
    assert [r["issuer"] for r in ra["spec"]["jwtRules"]] == [ISSUER]
    assert [o["name"] for o in ra["metadata"]["ownerReferences"]] == ["team-a"]

    theirs = {"issuer": ISSUER, "jwksUri": "https://idp.test/their-keys", "forwardOriginalToken": True}
    ra["spec"]["jwtRules"].append(theirs)
    stored = kube.custom.replace_namespaced_custom_object(*ISTIO[:2], SPACE, ISTIO[2], "team-a-auth", ra)
    theirs = stored["spec"]["jwtRules"][1]  # as the API server keeps it (its keys in its order)
    kube.delete(SPACE, "intruder")
    kube.delete(SPACE, "team-a")
    wait_for(lambda: gone_or_none(kube, "team-a") is None, PATIENCE, what="team-a gone")

    def handed_over() -> dict[str, Any] | None:
        found = custom(kube, ISTIO, "team-a-auth")
        return None if "ownerReferences" in found["metadata"] else found

    left = wait_for(handed_over, PATIENCE, what="our rule out, the object handed over")
    assert [json.dumps(r) for r in left["spec"]["jwtRules"]] == [json.dumps(theirs)]
    assert "annotations" not in left["metadata"], "none of our annotations left"
    kube.custom.delete_namespaced_custom_object(*ISTIO[:2], SPACE, ISTIO[2], "team-a-auth")


def closed(policy_spec: dict[str, Any]) -> bool:
    """A SecurityPolicy whose only providers were ours, released: one provider left that verifies no token
    (its routes stay closed), none of ours."""
    providers = (policy_spec.get("jwt") or {}).get("providers") or []
    return [p.get("localJWKS") for p in providers] == [{"type": "Inline", "inline": closed_jwks()}]
