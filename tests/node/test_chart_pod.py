"""Issue 25, items 2-4: `helm install` of the chart runs the operator's Pod on a real node.

The tests share one release and run in order: install with default values plus the local image, the
Pod's effective settings read from the runtime, a JwtSecret reconciled by the Pod with nothing but the
chart's RBAC, a consumer Pod seeing a rotation, `helm upgrade` to a new tag, `helm uninstall`.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.harness import ROOT
from tests.harness.idp import JwksProvider
from tests.harness.node import NODE_IP, NodeCluster
from tests.harness.tools import kubectl, run

RELEASE = "jwks"
NAMESPACE = "jwks-system"
APPS = "apps"
CHART = str(ROOT / "helm" / "jwks-operator")
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def admin(node: NodeCluster) -> Path:
    return node.write_kubeconfig(node.workdir / "admin.kubeconfig")


def helm(admin: Path, *args: str) -> str:
    done = run("helm", "--kubeconfig", str(admin), *args, timeout=600)
    assert done.returncode == 0, f"helm {' '.join(args[:2])} failed: {done.stderr.strip()}"
    return done.stdout


def get(admin: Path, *args: str) -> Any:
    return json.loads(kubectl(admin, "get", "-o", "json", *args))


def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"not in {timeout:.0f} s: {what}")


def operator_pods(admin: Path) -> list[Any]:
    pods = get(admin, "pods", "-n", NAMESPACE, "-l", "app.kubernetes.io/name=jwks-operator")["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def image_values(image: str) -> list[str]:
    repository, tag = image.rsplit(":", 1)
    return ["--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
            "--set", "image.pullPolicy=Never"]  # fmt: skip


class Provider:
    """A JwtSecret's JWK URL on NODE_IP, where the Pods reach it (keys from the harness's provider)."""

    def __init__(self) -> None:
        self.keys = JwksProvider(profile="no-cache")
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = json.dumps(provider.keys.document()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((NODE_IP, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{NODE_IP}:{self.server.server_address[1]}/jwks.json"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def provider(node: NodeCluster) -> Iterator[Provider]:
    served = Provider()
    yield served
    served.stop()


def test_helm_install_runs_the_pod(node: NodeCluster, admin: Path, image: tuple[str, Path]) -> None:
    started = time.monotonic()
    helm(admin, "install", RELEASE, CHART, "-n", NAMESPACE, "--create-namespace", *image_values(image[0]))
    kubectl(admin, "wait", "-n", NAMESPACE, "--for=condition=Available", "deployment/jwks-jwks-operator",
            "--timeout=180s")  # fmt: skip
    pod = operator_pods(admin)[0]
    assert pod["status"]["phase"] == "Running"
    print(f"\nDeployment Available in {time.monotonic() - started:.0f} s")


def container_pid(node: NodeCluster, pod: Any) -> int:
    """The PID (in this namespace) of a Pod's first container's process, from containerd."""
    container = pod["status"]["containerStatuses"][0]["containerID"].removeprefix("containerd://")
    for line in node.ctr("tasks", "ls").stdout.splitlines()[1:]:
        task, pid, *_ = line.split()
        if task == container:
            return int(pid)
    raise AssertionError(f"no task for container {container}")


def proc_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, v in (line.split(":", 1) for line in lines)}


def mount_options(pid: int, point: str) -> set[str]:
    """The options of the mount at `point` in the process's own mount namespace (the last one wins)."""
    found = [line.split() for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines()]
    entries = [fields for fields in found if fields[4] == point]
    assert entries, f"nothing mounted at {point}"
    return set(entries[-1][5].split(","))


def test_the_pods_effective_security_context_is_the_charts(node: NodeCluster, admin: Path) -> None:
    """Read from the running process (containerd's task), not from the manifest."""
    pid = container_pid(node, operator_pods(admin)[0])
    status = proc_status(pid)
    assert status["Uid"].split() == ["65532"] * 4
    assert status["Gid"].split() == ["65532"] * 4
    assert int(status["CapEff"], 16) == 0  # capabilities: drop ALL
    assert int(status["CapBnd"], 16) == 0
    assert status["NoNewPrivs"] == "1"  # allowPrivilegeEscalation: false
    assert status["Seccomp"] == "2"  # seccompProfile: RuntimeDefault (filter mode)
    assert "ro" in mount_options(pid, "/")  # readOnlyRootFilesystem
    assert "rw" in mount_options(pid, "/tmp")  # the emptyDir
    cgroup = next(
        line.split(":", 2)[2]
        for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        if line.split(":")[1] == "memory"
    )
    limit = int(Path(f"/sys/fs/cgroup/memory{cgroup}/memory.limit_in_bytes").read_text())
    assert limit == 256 * 2**20  # resources.limits.memory: 256Mi
    env = dict(
        item.split("=", 1) for item in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in item
    )
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"  # in-cluster configuration
    # (/var/run is a symlink to /run in the image: read the target, not through the symlink)
    assert Path(f"/proc/{pid}/root/run/secrets/kubernetes.io/serviceaccount/token").is_file()


def http_get(url: str, timeout: float = 60) -> tuple[int, str]:
    """The first answer of `url` (retried while nothing listens yet: the operator is starting)."""

    def attempt() -> tuple[int, str] | None:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                return answer.status, answer.read().decode()
        except ConnectionRefusedError:
            return None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, ConnectionRefusedError):
                return None
            raise

    answer: tuple[int, str] = wait_for(attempt, timeout, f"an answer from {url}")
    return answer


def test_liveness_and_metrics_through_the_service(node: NodeCluster, admin: Path) -> None:
    pod = operator_pods(admin)[0]
    ip = pod["status"]["podIP"]
    assert http_get(f"http://{ip}:8080/healthz")[0] == 200
    service = get(admin, "service", "-n", NAMESPACE, "jwks-jwks-operator-metrics")
    cluster_ip, port = service["spec"]["clusterIP"], service["spec"]["ports"][0]["port"]
    slices = get(admin, "endpointslices", "-n", NAMESPACE, "-l",
                 "kubernetes.io/service-name=jwks-jwks-operator-metrics")["items"]  # fmt: skip
    endpoints = [a for s in slices for e in s.get("endpoints") or [] for a in e["addresses"]]
    assert endpoints == [ip]
    node.expose(cluster_ip, port, ip, 9090)  # what kube-proxy would write
    code, body = http_get(f"http://{cluster_ip}:{port}/metrics")
    assert code == 200
    assert "jwks_operator_" in body
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0


def test_upgrade_then_a_jwtsecret_is_reconciled_by_the_pod(
    node: NodeCluster, admin: Path, image: tuple[str, Path], provider: Provider
) -> None:
    """`helm upgrade` to a new tag (and a provider on the node: --allow-private-networks); then the Pod,
    with the chart's RBAC only, makes a JwtSecret Ready and publishes its keys."""
    upgraded = image[0].rsplit(":", 1)[0] + ":upgraded"
    node.ctr("images", "tag", "--force", image[0], upgraded)
    before = {p["metadata"]["name"] for p in operator_pods(admin)}
    helm(admin, "upgrade", RELEASE, CHART, "-n", NAMESPACE, *image_values(upgraded),
         "--set", "extraArgs={--allow-private-networks}", "--set", "refresh.minInterval=1",
         "--set", "refresh.fallbackInterval=2")  # fmt: skip
    kubectl(admin, "rollout", "status", "-n", NAMESPACE, "deployment/jwks-jwks-operator", "--timeout=120s")
    pods = wait_for(
        lambda: [p for p in operator_pods(admin) if p["metadata"]["name"] not in before], 60, "a new Pod"
    )
    assert pods[0]["spec"]["containers"][0]["image"] == upgraded
    kubectl(admin, "create", "namespace", APPS)
    kubectl(admin, "apply", "-n", APPS, "-f", "-", stdin=json.dumps({
        "apiVersion": "jwks.dev/v1alpha1", "kind": "JwtSecret", "metadata": {"name": "node"},
        "spec": {"jwkUrl": provider.url, "allowInsecureHttp": True, "audiences": ["node-api"],
                 "issuers": [f"http://{NODE_IP}"]},
    }))  # fmt: skip
    kubectl(admin, "wait", "-n", APPS, "--for=condition=Ready", "jwtsecret/node", "--timeout=90s")
    published = json.loads(get(admin, "configmap", "-n", APPS, "node-jwks")["data"]["jwks.json"])
    assert [k["kid"] for k in published["keys"]] == provider.keys.keys


def test_a_consumer_pod_sees_the_rotation(
    node: NodeCluster, admin: Path, image: tuple[str, Path], provider: Provider
) -> None:
    """A Pod mounting the published ConfigMap reads the rotated jwks.json after the kubelet's sync."""
    script = (
        "import json, time\n"
        "while True:\n"
        "    keys = json.load(open('/jwks/jwks.json'))['keys']\n"
        "    print('kids', ' '.join(k['kid'] for k in keys), flush=True)\n"
        "    time.sleep(1)\n"
    )
    kubectl(admin, "apply", "-n", APPS, "-f", "-", stdin=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "consumer"},
        "spec": {"containers": [{"name": "consumer", "image": image[0], "imagePullPolicy": "Never",
                                 "command": ["python", "-c", script],
                                 "volumeMounts": [{"name": "jwks", "mountPath": "/jwks"}]}],
                 "volumes": [{"name": "jwks", "configMap": {"name": "node-jwks"}}]},
    }))  # fmt: skip
    kubectl(admin, "wait", "-n", APPS, "--for=condition=Ready", "pod/consumer", "--timeout=90s")
    uid = get(admin, "pod", "-n", APPS, "consumer")["metadata"]["uid"]
    log = Path(f"/var/log/pods/{APPS}_consumer_{uid}/consumer/0.log")  # the kubelet's own record

    def seen() -> list[str]:
        lines = log.read_text().splitlines() if log.exists() else []
        return [line.split(" kids ", 1)[1] for line in lines if " kids " in line]

    old = provider.keys.keys
    wait_for(lambda: " ".join(old) in seen(), 60, f"the consumer reading {old}")
    new = provider.keys.rotate()
    for kid in old:
        provider.keys.retire(kid)
    started = time.monotonic()
    wait_for(lambda: seen()[-1] == new if seen() else False, 180, f"the consumer reading {new}")
    print(f"\nconsumer saw the rotation {time.monotonic() - started:.0f} s after it")


def memory_cgroup(pid: int) -> Path:
    line = next(
        x for x in Path(f"/proc/{pid}/cgroup").read_text().splitlines() if x.split(":")[1] == "memory"
    )
    return Path(f"/sys/fs/cgroup/memory{line.split(':', 2)[2]}")


def test_memory_stays_under_the_limit_with_1000_jwtsecrets(
    node: NodeCluster, admin: Path, provider: Provider
) -> None:
    """Issue 25, item 5: the peak the kubelet's cgroup saw, under the chart's limit, no restart."""
    pod = operator_pods(admin)[0]
    cgroup = memory_cgroup(container_pid(node, pod))
    count = 1000
    items = [
        {"apiVersion": "jwks.dev/v1alpha1", "kind": "JwtSecret", "metadata": {"name": f"load-{i:04d}"},
         "spec": {"jwkUrl": provider.url, "allowInsecureHttp": True, "audiences": ["load"],
                  "refresh": {"minInterval": "1h"}}}
        for i in range(count)
    ]  # fmt: skip
    started = time.monotonic()
    kubectl(admin, "apply", "-n", APPS, "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List",
                                                                     "items": items}))  # fmt: skip

    def ready() -> bool:
        found = get(admin, "jwtsecrets", "-n", APPS)["items"]
        done = [
            j for j in found
            if j["metadata"]["name"].startswith("load-")
            and any(c["type"] == "Ready" and c["status"] == "True"
                    for c in j.get("status", {}).get("conditions", []))
        ]  # fmt: skip
        return len(done) == count

    wait_for(ready, 600, f"{count} JwtSecrets Ready")
    peak = int((cgroup / "memory.max_usage_in_bytes").read_text())
    limit = int((cgroup / "memory.limit_in_bytes").read_text())
    print(f"\n{count} JwtSecrets Ready in {time.monotonic() - started:.0f} s; "
          f"peak memory {peak / 2**20:.0f} MiB of {limit / 2**20:.0f} MiB", file=sys.stderr)  # fmt: skip
    assert peak < limit
    pod = get(admin, "pod", "-n", NAMESPACE, pod["metadata"]["name"])
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0


def leader_of(pods: list[Any]) -> list[str]:
    """The Pods whose jwks_operator_leader metric is 1."""
    leaders = []
    for pod in pods:
        body = http_get(f"http://{pod['status']['podIP']}:9090/metrics")[1]
        if "jwks_operator_leader 1.0" in body.splitlines():
            leaders.append(pod["metadata"]["name"])
    return leaders


def test_ha_two_replicas_fail_over_when_the_leader_pod_is_deleted(
    node: NodeCluster, admin: Path, image: tuple[str, Path], provider: Provider
) -> None:
    """Issue 25, item 6: replicaCount 2 (peering); one leads, both are Ready; deleting the leader's Pod
    hands over to the other, which then reconciles."""
    upgraded = image[0].rsplit(":", 1)[0] + ":upgraded"
    helm(admin, "upgrade", RELEASE, CHART, "-n", NAMESPACE, *image_values(upgraded),
         "--set", "replicaCount=2", "--set", "extraArgs={--allow-private-networks}",
         "--set", "refresh.minInterval=1", "--set", "refresh.fallbackInterval=2")  # fmt: skip
    kubectl(admin, "rollout", "status", "-n", NAMESPACE, "deployment/jwks-jwks-operator", "--timeout=300s")
    pods = wait_for(lambda: len(operator_pods(admin)) == 2 and operator_pods(admin), 60, "two replicas")
    leaders = wait_for(lambda: len(leader_of(pods)) == 1 and leader_of(pods), 120, "exactly one leader")
    for pod in pods:  # the standby is Ready too (see the chart's readinessProbe)
        assert any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"]["conditions"])
    standby = next(p for p in pods if p["metadata"]["name"] not in leaders)
    started = time.monotonic()
    kubectl(admin, "delete", "pod", "-n", NAMESPACE, leaders[0], "--wait=false")
    wait_for(lambda: leader_of([standby]), 120, "the standby leading")
    failover = time.monotonic() - started
    old = provider.keys.keys
    new = provider.keys.rotate()
    for kid in old:
        provider.keys.retire(kid)

    def published() -> bool:
        data = get(admin, "configmap", "-n", APPS, "node-jwks")["data"]["jwks.json"]
        return [k["kid"] for k in json.loads(data)["keys"]] == [new]

    wait_for(published, 120, "the new leader publishing the rotation")
    then = time.monotonic() - started - failover
    print(f"\nfailover: the standby led {failover:.0f} s after the leader's Pod was deleted; "
          f"the rotation published {then:.0f} s later", file=sys.stderr)  # fmt: skip


def test_helm_uninstall_keeps_the_crd_and_jwtsecrets(node: NodeCluster, admin: Path) -> None:
    helm(admin, "uninstall", RELEASE, "-n", NAMESPACE, "--wait", "--timeout=120s")
    assert get(admin, "deployments", "-n", NAMESPACE)["items"] == []
    wait_for(lambda: not operator_pods(admin), 60, "the operator Pod gone")
    get(admin, "crd", "jwtsecrets.jwks.dev")
    assert get(admin, "jwtsecret", "-n", APPS, "node")["metadata"]["name"] == "node"
    assert get(admin, "configmap", "-n", APPS, "node-jwks")["data"]["jwks.json"]


def test_a_pod_whose_health_endpoint_does_not_answer_is_not_ready(
    node: NodeCluster, admin: Path, image: tuple[str, Path]
) -> None:
    """The readinessProbe: Ready needs the operator's health endpoint, not just a started process.
    Here the operator serves it on another port than the probes ask (the later --liveness wins)."""
    elsewhere = "extraArgs={--liveness=http://0.0.0.0:8081/healthz}"
    helm(admin, "install", "unready", CHART, "-n", "unready", "--create-namespace", *image_values(image[0]),
         "--set", "crds.enabled=false", "--set", elsewhere)  # fmt: skip
    pod = wait_for(
        lambda: [
            p for p in get(admin, "pods", "-n", "unready")["items"]
            if (p["status"].get("containerStatuses") or [{}])[0].get("started")
        ],
        90, "the operator container started",
    )[0]  # fmt: skip
    ip = pod["status"]["podIP"]
    assert http_get(f"http://{ip}:8081/healthz")[0] == 200  # the operator is up and serving
    name = pod["metadata"]["name"]

    def probe_failed() -> bool:
        events = get(admin, "events", "-n", "unready", "--field-selector", f"involvedObject.name={name}")
        return any(e["message"].startswith("Readiness probe failed") for e in events["items"])

    wait_for(probe_failed, 60, "the kubelet's readiness probe failing")
    pod = get(admin, "pod", "-n", "unready", name)
    ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False", ready
    deployment = get(admin, "deployment", "-n", "unready", "unready-jwks-operator")
    assert not deployment["status"].get("readyReplicas")
    helm(admin, "uninstall", "unready", "-n", "unready", "--wait", "--timeout=120s")
