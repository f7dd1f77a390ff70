"""Which Kubernetes the tests run against: the emulator (fast tier) or a real control plane.

`JWKS_BACKEND=emulator` (default) serves tests/harness/k8s/'s emulator; `JWKS_BACKEND=real` starts
tests/harness/control_plane.py's etcd + kube-apiserver + kube-controller-manager. Both clusters offer
the same interface (a context manager with `url`, `write_kubeconfig`, `api_client`), and
`operator_requests` reads what the operator asked of either: the emulator's request log, or the real
API server's audit log.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tests.harness.control_plane import RealCluster
from tests.harness.k8s import EmulatedCluster
from tests.harness.k8s.server import resource_of, verb

Backend = Literal["emulator", "real"]
BACKEND: Backend = "real" if os.environ.get("JWKS_BACKEND", "emulator") == "real" else "emulator"
OPERATOR_AGENTS = ("kopf/", "jwks-operator/")
# deploy/'s ServiceAccount: what the operator runs as on the real control plane
OPERATOR_NAMESPACE = OPERATOR_SA = "jwks-operator"
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_SA}"


def new_cluster(workdir: Path, crds: Sequence[Mapping[str, Any]] = ()) -> EmulatedCluster | RealCluster:
    """A cluster of the selected backend serving these CRDs (enter it to start it)."""
    if BACKEND == "real":
        return RealCluster(workdir, crds)
    return EmulatedCluster(crds=crds)


@dataclass(frozen=True)
class Call:
    """One request the operator made: RBAC terms (group, resource[/subresource], verb) and its URI."""

    group: str
    resource: str
    verb: str
    uri: str
    code: int  # the answer's status code (0 from the emulator, which records requests only)
    forbidden: bool  # refused by authorization (RBAC), not by admission such as a terminating namespace


def operator_requests(cluster: EmulatedCluster | RealCluster, user: str = "") -> list[Call]:
    """The operator's requests to the API (told apart by its and Kopf's User-Agents); for a real
    cluster, also by `user` when given (the ServiceAccount it runs as). Discovery is left out."""
    if isinstance(cluster, RealCluster):
        return [
            Call(r.group, r.resource, r.verb, r.uri, r.code, r.decision == "forbid")
            for r in cluster.requests()
            if r.user_agent.startswith(OPERATOR_AGENTS) and r.resource and (not user or r.user == user)
        ]
    calls = []
    for request in cluster.call(lambda api: list(api._requests)):
        agent = next((v for k, v in request.headers.items() if k.lower() == "user-agent"), "")
        if not agent.startswith(OPERATOR_AGENTS) or request.resource is None or not request.resource.plural:
            continue
        group = request.resource.group or ""
        calls.append(Call(group, resource_of(request), verb(request), str(request.url), 0, False))
    return calls
