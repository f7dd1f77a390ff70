"""The API's names in one place: the JwtSecret resource, labels, annotations and published data keys.

Shared by the operator, the verify library, the tests and the benchmarks (pure constants, no imports).
"""

from __future__ import annotations

GROUP = "jwks.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "JwtSecret"
PLURAL = "jwtsecrets"

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "jwks-operator"
MANAGED_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY}"  # what the operator watches ConfigMaps with
OWNER_LABEL = f"{GROUP}/jwtsecret"  # on each output, when the JwtSecret's name fits a label value

REFRESH_ANNOTATION = f"{GROUP}/refresh-requested-at"  # `kubectl annotate` it to force a refresh
SHARED_ANNOTATION = f"{GROUP}/shared"  # marks a shared target (several contributors)
# On a JwtSecret with gateway outputs: its entries in objects shared with others are taken out before it
# goes, even if it is deleted while no operator runs. (Not Kopf's own finalizer name: Kopf strips that.)
RELEASE_FINALIZER = f"{GROUP}/release-outputs"

JWKS_KEY = "jwks.json"  # the JWK Set, public members only
ENVOY_GATEWAY_KEY = "jwks"  # the same set under the key Envoy Gateway's localJWKS valueRef reads
POLICY_KEY = "policy.json"  # issuers, audiences, algorithms, source
INDEX_KEY = "index.json"  # shared targets: contributors and kid collisions
# Shared targets: the JwtSecret that created one (its spec.target.allow decides who may join), and, in the
# data outputs.render gives for a shared spec, that allow-list (never published: a data key has no "/").
SHARED_OWNER_ANNOTATION = f"{GROUP}/shared-owner"
TARGET_ALLOW_PART = f"{GROUP}/target-allow"
