"""Verify as a gateway would (`jwks-operator verify --as NAME`): each gateway's measured rules, so that "why
did my gateway say 401?" has an answer. The seed's rules are the default (verify.verifier's docstring).

- envoy (and istio, envoy-gateway, which configure Envoy's jwt_authn): 60 s of clock skew (Envoy's
  default `clock_skew_seconds`; neither control plane sets it), `iss` a string only, `crit` ignored, `iat`
  not checked, no Ed448 key (EdDSA with Ed25519 only). istio adds what an AuthorizationPolicy requiring a
  principal (`requestPrincipals: ["<iss>/*"]`) asks: a non-empty `sub`. Measured by the Envoy tier
  (tests/envoy), which checks that these profiles and real Envoy agree on every row of its matrix.
- spacecloud: Space Cloud's gateway/utils/jwt with dgrijalva/jwt-go's MapClaims.Valid: no leeway, `iat`
  in the future refused, `iss` and `aud` a string or a list, `crit` ignored; an RSA key is an
  RS256_PUBLIC secret (RS256 only), an HMAC key HS256 only, EC and OKP keys none.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

ENVOY_EDDSA_CURVES = frozenset({"Ed25519"})


def envoy_verifies(key: Mapping[str, Any]) -> bool:
    """Whether Envoy's jwt_authn can verify with the key (every kind but an OKP key of another curve)."""
    return key.get("kty") != "OKP" or key.get("crv") in ENVOY_EDDSA_CURVES


def _envoy_key(key: Mapping[str, Any]) -> Mapping[str, Any] | None:
    return key if envoy_verifies(key) else None


def _space_cloud_key(key: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The key as Space Cloud's entry uses it: RSA as RS256 only, HMAC as HS256 only, nothing else."""
    alg = {"RSA": "RS256", "oct": "HS256"}.get(str(key.get("kty")))
    if alg is None or key.get("alg") not in (None, alg):
        return None
    return {**key, "alg": alg}


def _every_key(key: Mapping[str, Any]) -> Mapping[str, Any] | None:
    return key


@dataclass(frozen=True, slots=True)
class Profile:
    """One gateway's rules, where they differ from the seed's."""

    name: str
    leeway: float  # clock skew allowed for exp, nbf and iat, unless --leeway says otherwise
    refuse_crit: bool = True  # a `crit` header is refused (no extension is understood)
    check_iat: bool = True  # an `iat` in the future is refused
    iss_list: bool = True  # `iss` may be a list of strings, like `aud`
    require_sub: bool = False  # a non-empty string `sub` is required
    key: Callable[[Mapping[str, Any]], Mapping[str, Any] | None] = _every_key  # a key as the gateway
    # uses it (its alg narrowed to what it verifies), or None when it cannot use it


SEED = Profile("seed", 30.0)
ENVOY = Profile("envoy", 60.0, refuse_crit=False, check_iat=False, iss_list=False, key=_envoy_key)
PROFILES: Mapping[str, Profile] = {
    profile.name: profile
    for profile in (
        SEED,
        ENVOY,
        Profile(
            "istio",
            60.0,
            refuse_crit=False,
            check_iat=False,
            iss_list=False,
            require_sub=True,
            key=_envoy_key,
        ),
        Profile("envoy-gateway", 60.0, refuse_crit=False, check_iat=False, iss_list=False, key=_envoy_key),
        Profile("spacecloud", 0.0, refuse_crit=False, key=_space_cloud_key),
    )
}
