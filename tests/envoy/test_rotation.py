"""Rotation end to end: the provider adds a key and retires the old one, the operator republishes, each
control plane pushes the changed listener to its Envoy, and Envoy accepts the new key's tokens, then, once
`rotation.retainRemovedFor` has passed, refuses the retired key's. Taking the outputs away (or deleting
the JwtSecret) withdraws the keys from both control planes; what Envoy then does is each gateway's rule.

Times are not asserted: benchmarks/gateway.py measures them."""

from __future__ import annotations

from pathlib import Path

import trustme

from tests.envoy.matrix import good
from tests.harness.client import ClusterClient, wait_for
from tests.harness.idp import JwksProvider
from tests.harness.twogateways import (
    AUDIENCE,
    ISSUER,
    PATIENCE,
    Gateways,
    gateways,
    outputs,
    platform,
    published,
)


def verdicts(gws: Gateways, token: str | None) -> dict[str, int]:
    """Each gateway's status for the token, after each control plane pushed what it sees now."""
    gws.sync()
    return {name: pusher.envoy.request(token).status for name, pusher in gws}


def spec(url: str) -> dict[str, object]:
    return {
        "jwkUrl": url,
        "issuers": [ISSUER],
        "audiences": [AUDIENCE],
        "rotation": {"retainRemovedFor": "3s"},
        "outputs": outputs(),
    }


def test_a_rotation_reaches_envoy_and_the_retired_key_is_refused_after_retain_removed_for(
    kube: ClusterClient, ns: str, ca: trustme.CA, tmp_path: Path
) -> None:
    platform(kube, ns)
    with JwksProvider(ca=ca, max_age=1) as idp:
        old = idp.keys[0]
        kube.create(ns, "shop", spec(idp.url))
        published(kube, ns, "shop")
        with gateways(kube, ns, tmp_path) as gws:
            old_token = idp.sign(good(), kid=old)
            assert verdicts(gws, old_token) == {"istio": 200, "envoy-gateway": 200}

            new = idp.rotate()
            idp.retire(old)
            new_token = idp.sign(good(), kid=new)
            accepted = {"istio": 200, "envoy-gateway": 200}
            wait_for(lambda: verdicts(gws, new_token) == accepted, PATIENCE, "the new key accepted")
            refused = {"istio": 401, "envoy-gateway": 401}
            wait_for(lambda: verdicts(gws, old_token) == refused, PATIENCE, "the retired key refused")
            assert verdicts(gws, new_token) == accepted

            for name, pusher in gws:
                kids = [k for k, _ in pusher.pushes]
                assert kids == [frozenset({old, new}), frozenset({new})], f"{name}: both, then the new alone"
                assert all(replaced for _, replaced in pusher.pushes), f"{name}: each push a new listener"


def test_taking_the_keys_away_makes_both_gateways_refuse(
    kube: ClusterClient, ns: str, ca: trustme.CA, tmp_path: Path
) -> None:
    """Dropping the outputs, then deleting the JwtSecret. Istio: the RequestAuthentication the operator made
    is deleted, and the AuthorizationPolicy that requires a principal refuses every request (403). Envoy
    Gateway: the operator's providers were the SecurityPolicy's only ones, so its release leaves one that
    verifies no token: the route keeps refusing (401), with or without a token."""
    platform(kube, ns)
    with JwksProvider(ca=ca, max_age=1) as idp:
        kube.create(ns, "shop", spec(idp.url))
        published(kube, ns, "shop")
        with gateways(kube, ns, tmp_path) as gws:
            token = idp.sign(good())
            assert verdicts(gws, token) == {"istio": 200, "envoy-gateway": 200}
            assert verdicts(gws, None) == {"istio": 403, "envoy-gateway": 401}

            kube.patch_spec(ns, "shop", {"outputs": None})
            withdrawn = {"istio": 403, "envoy-gateway": 401}
            wait_for(lambda: verdicts(gws, token) == withdrawn, PATIENCE, "the keys withdrawn from both")
            assert verdicts(gws, None) == withdrawn

            kube.patch_spec(ns, "shop", {"outputs": outputs()})
            wait_for(lambda: verdicts(gws, token) == {"istio": 200, "envoy-gateway": 200}, PATIENCE, "back")
            kube.delete(ns, "shop")
            wait_for(lambda: verdicts(gws, token) == withdrawn, PATIENCE, "the keys withdrawn on deletion")
            assert verdicts(gws, None) == withdrawn
