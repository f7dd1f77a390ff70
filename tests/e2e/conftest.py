"""End-to-end fixtures: an emulated cluster (or a real one), the operator process, TLS providers.

Against a real cluster: `JWKS_E2E_KUBECONFIG=~/.kube/config make e2e`. The CRD is applied from
crds/, each test uses its own namespace, and the operator runs locally with that kubeconfig.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trustme
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from jwks_operator.names import GROUP, PLURAL, VERSION
from tests.harness.backend import BACKEND, new_cluster
from tests.harness.control_plane import RealCluster
from tests.harness.k8s import EmulatedCluster, load_crds
from tests.harness.operator import OperatorProcess
from tests.harness.tools import kubectl

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")
EMULATED: EmulatedCluster | None = None  # the emulator, when the tests run on it
CLUSTER: EmulatedCluster | RealCluster | None = None  # the session's cluster (None: JWKS_E2E_KUBECONFIG)
OPERATOR_NAMESPACE = OPERATOR_SA = "jwks-operator"  # deploy/'s ServiceAccount
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_SA}"

pytestmark = pytest.mark.e2e


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect (not skip) what does not belong to this tier: tests/e2e/real/ needs the real control
    plane (JWKS_BACKEND=real); tests marked `emulator_only` need the emulator."""
    real = BACKEND == "real" and not os.environ.get("JWKS_E2E_KUBECONFIG")
    real_dir = Path(__file__).parent / "real"

    def wanted(item: pytest.Item) -> bool:
        if real_dir in Path(str(item.path)).parents:
            return real
        return not (BACKEND == "real" and item.get_closest_marker("emulator_only"))

    keep = [item for item in items if wanted(item)]
    if len(keep) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if not wanted(item)])
        items[:] = keep


def wait_for(check: Callable[[], T | None], timeout: float = 20.0, what: str = "condition") -> T:
    """Poll until `check` returns a truthy value; fail with the last value otherwise."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (ApiException, KeyError, IndexError, TypeError) as exc:
            last = exc
        else:
            if last:
                result: T = last
                return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last value: {last!r}")


class Kube:
    """The real `kubernetes` client, with shortcuts for JwtSecrets."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.core: Any = client.CoreV1Api(api)
        self.custom: Any = client.CustomObjectsApi(api)

    def create(self, ns: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "JwtSecret",
            "metadata": {"name": name},
            "spec": spec,
        }
        result: dict[str, Any] = self.custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body)
        return result

    def get(self, ns: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)
        return result

    def patch_spec(self, ns: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL, name, {"spec": spec}, _content_type="application/merge-patch+json"
        )
        return result

    def delete(self, ns: str, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)

    def condition(self, ns: str, name: str, kind: str = "Ready") -> dict[str, Any] | None:
        status = self.get(ns, name).get("status") or {}
        return next((c for c in status.get("conditions") or [] if c["type"] == kind), None)

    def wait_condition(
        self,
        ns: str,
        name: str,
        status: str = "True",
        reason: str | None = None,
        kind: str = "Ready",
        timeout: float = 20.0,
    ) -> dict[str, Any]:
        """Wait until the condition has that status (and reason); return the whole object."""

        def check() -> dict[str, Any] | None:
            obj = self.get(ns, name)
            conds = (obj.get("status") or {}).get("conditions") or []
            cond = next((c for c in conds if c["type"] == kind), None)
            ok = cond is not None and cond["status"] == status and reason in (None, cond["reason"])
            return (
                obj
                if ok and obj["status"].get("observedGeneration") == obj["metadata"]["generation"]
                else None
            )

        return wait_for(check, timeout, f"{kind}={status} ({reason}) on {ns}/{name}")

    def configmap(self, ns: str, name: str) -> Any:
        return self.core.read_namespaced_config_map(name, ns)

    def events(self, ns: str, name: str) -> list[Any]:
        items = self.core.list_namespaced_event(ns).items
        return [e for e in items if e.involved_object.name == name]


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatedCluster | RealCluster | None]:
    """The session's cluster of the selected backend (None with JWKS_E2E_KUBECONFIG: a user's)."""
    if os.environ.get("JWKS_E2E_KUBECONFIG"):
        yield None
        return
    global CLUSTER, EMULATED
    with new_cluster(tmp_path_factory.mktemp("cluster"), load_crds(ROOT / "crds")) as started:
        CLUSTER = started
        EMULATED = started if isinstance(started, EmulatedCluster) else None
        yield started
    CLUSTER = EMULATED = None


@pytest.fixture(scope="session")
def kubeconfig(
    cluster: EmulatedCluster | RealCluster | None, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """An admin kubeconfig for the session's cluster, or JWKS_E2E_KUBECONFIG (CRD applied)."""
    if cluster is not None:
        return cluster.write_kubeconfig(tmp_path_factory.mktemp("kube") / "kubeconfig")
    path = Path(os.environ["JWKS_E2E_KUBECONFIG"]).expanduser()
    api = config.new_client_from_config(str(path))  # type: ignore[no-untyped-call]
    ext: Any = client.ApiextensionsV1Api(api)
    for crd in load_crds(ROOT / "crds"):
        try:
            ext.create_custom_resource_definition(crd)
        except ApiException as exc:
            if exc.status != 409:
                raise
    time.sleep(2)  # let the API server establish the CRD
    return path


@pytest.fixture(scope="session")
def operator_kubeconfig(
    cluster: EmulatedCluster | RealCluster | None, kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """What the operator runs with: on the real control plane, the ServiceAccount and RBAC of deploy/
    (a token from the TokenRequest API), so every request is authorized as in a cluster."""
    if not isinstance(cluster, RealCluster):
        return kubeconfig
    kubectl(kubeconfig, "apply", "--server-side", "-f", str(ROOT / "deploy" / "namespace.yaml"))
    kubectl(kubeconfig, "apply", "--server-side", "-f", str(ROOT / "deploy" / "rbac.yaml"))
    path = tmp_path_factory.mktemp("operator-sa") / "kubeconfig"
    return cluster.service_account_kubeconfig(OPERATOR_NAMESPACE, OPERATOR_SA, path)


@pytest.fixture(scope="session")
def kube(kubeconfig: Path) -> Kube:
    return Kube(config.new_client_from_config(str(kubeconfig)))  # type: ignore[no-untyped-call]


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_bundle(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture(scope="session")
def operator(
    operator_kubeconfig: Path, ca_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """One operator for the session, trusting the test CA, refreshing at least every second."""
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    args = [
        "--min-interval",
        "1",
        "--fallback-interval",
        "2",
        "--retry-base",
        "1",
        "--retry-max",
        "4",
        "--fetch-timeout",
        "2",
        "--fetch-deadline",
        "3",
        "--allow-private-networks",
    ]
    proc = OperatorProcess(
        operator_kubeconfig, log, args=args, env={"REQUESTS_CA_BUNDLE": str(ca_bundle)}, metrics=True
    )
    with proc:
        yield proc
    print(f"operator log: {log}")


@pytest.fixture
def ns(kube: Kube, operator: OperatorProcess) -> Iterator[str]:
    """A fresh namespace per test (the operator is running)."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    kube.core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    kube.core.delete_namespace(name)


@pytest.fixture
def examples() -> dict[str, list[dict[str, Any]]]:
    """The YAML documents of every file in examples/, by file name."""
    return {
        p.name: list(yaml.safe_load_all(p.read_text())) for p in sorted((ROOT / "examples").glob("*.yaml"))
    }
