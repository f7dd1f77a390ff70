"""What `jwks-operator run` checks in the cluster before it starts: the CRDs it watches are served.

Kopf discovers the resources it watches once, at startup (no CRD watch: that would need cluster-wide RBAC
on CRDs), so an operator started before the JwtSecret CRD would never watch JwtSecrets, however long it
ran. It exits instead (status 2) with one line naming the missing CRD; in a pod, the restart after the CRD
is applied finds it. Discovery (GET /apis/GROUP/VERSION) needs no RBAC rule: every authenticated user may.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import NamedTuple

import urllib3
from kubernetes.client.exceptions import ApiException

from jwks_operator.app.cli_errors import CliError, api_error
from jwks_operator.kube.http import ApiHttp, path
from jwks_operator.model.names import GROUP, KIND, PLURAL, VERSION

PEERING_CRDS = "kubectl apply --server-side -f helm/jwks-operator/crds/ (Kopf's peering CRDs)"


class Crd(NamedTuple):
    """A resource the operator needs, and how to install its CRD."""

    group: str
    version: str
    plural: str
    kind: str
    install: str

    @property
    def name(self) -> str:
        return f"{self.plural}.{self.group}"


JWTSECRETS = Crd(GROUP, VERSION, PLURAL, KIND, "kubectl apply --server-side -f crds/")


def needed(peering: str | None, clusterwide: bool) -> Iterator[Crd]:
    """The CRDs `run` needs: JwtSecrets, and with --peering Kopf's peering kind for its scope."""
    yield JWTSECRETS
    if peering is not None:
        plural, kind = (
            ("clusterkopfpeerings", "ClusterKopfPeering") if clusterwide else ("kopfpeerings", "KopfPeering")
        )
        yield Crd("kopf.dev", "v1", plural, kind, PEERING_CRDS)


def served(http: ApiHttp, crd: Crd) -> bool:
    """Whether the API server serves the CRD's resource (installed and established)."""
    try:
        found = http.request("GET", path("apis", crd.group, crd.version))
    except ApiException as exc:
        if exc.status == 404:  # no such group or version
            return False
        raise
    return any(r.get("name") == crd.plural for r in found.get("resources") or [] if isinstance(r, dict))


def require_crds(http: ApiHttp, server: str, peering: str | None, clusterwide: bool) -> None:
    """CliError naming the first CRD the API server does not serve (or why it could not be asked)."""
    pool = logging.getLogger("urllib3.connectionpool")
    level = pool.level
    pool.setLevel(logging.ERROR)  # its retry warnings: the CliError says it
    try:
        for crd in needed(peering, clusterwide):
            _require(http, server, crd)
    finally:
        pool.setLevel(level)


def _require(http: ApiHttp, server: str, crd: Crd) -> None:
    subject = f"CRD {crd.name}"
    try:
        present = served(http, crd)
    except (ApiException, urllib3.exceptions.HTTPError) as exc:
        raise api_error(subject, exc, server, crd.kind, "") from None
    if not present:
        raise CliError(
            subject, f"not installed in the cluster at {server}", f"install it first: {crd.install}"
        )
