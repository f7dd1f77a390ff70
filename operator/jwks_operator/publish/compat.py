"""Which published keys each gateway can use (pure), so that an output gives its gateway only those and
names the others in its OutputReady message.

- Envoy (Istio and Envoy Gateway both configure Envoy's jwt_authn): EdDSA with Ed25519 keys only
  (verify.profiles.envoy_verifies, which `jwks-operator verify --as envoy` applies too). An Ed448
  key in its JWKS is ignored without a warning, and its tokens are refused ("Jwks doesn't have key to
  match kid or alg from Jwt"), as the Envoy tier measures (tests/envoy, docs/data-plane.md). RSA (RS*,
  PS*), EC P-256/384/521 and Ed25519 are all verified.
- Space Cloud: an RSA key becomes an RS256_PUBLIC secret, which verifies RS256 only: tokens of the same key
  signed with RS384, RS512 or PS* are refused (its utils/jwt), said here when the key and spec.algorithms
  allow them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jwks_operator.keys.keyset import KeySet, key_algorithms, thumbprint
from jwks_operator.verify.profiles import envoy_verifies

SPACE_CLOUD_ALG = "RS256"


def key_name(key: Mapping[str, Any]) -> str:
    """How a key is named in messages: its kid, else its RFC 7638 thumbprint."""
    kid = key.get("kid")
    return str(kid) if isinstance(kid, str) else thumbprint(key)


def _listed(names: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


@dataclass(frozen=True, slots=True)
class Fit:
    """The keys a gateway gets, and what is said about the others (empty when it takes them all)."""

    keys: tuple[Mapping[str, Any], ...]
    note: str = ""


envoy_usable = envoy_verifies  # the rule `jwks-operator verify --as envoy` applies too


def envoy_fit(keys: Sequence[Mapping[str, Any]]) -> Fit:
    """The keys an Envoy-based gateway gets: all but Ed448 ones, which the note names."""
    left_out = [key_name(k) for k in keys if not envoy_usable(k)]
    if not left_out:
        return Fit(tuple(keys))
    note = (
        f"{len(left_out)} Ed448 key(s) left out ({_listed(left_out)}): Envoy verifies EdDSA with Ed25519 "
        "keys only, so their tokens are refused"
    )
    return Fit(tuple(k for k in keys if envoy_usable(k)), note)


def envoy_rendered(key_set: KeySet) -> str:
    """The JWK Set an Envoy-based gateway reads, rendered like the published one (the same text when no key
    is left out, so nothing is rewritten)."""
    fit = envoy_fit(key_set.keys)
    if len(fit.keys) == len(key_set.keys):
        return key_set.rendered
    return KeySet(tuple(dict(k) for k in fit.keys)).rendered


def space_cloud_note(keys: Sequence[Mapping[str, Any]], algorithms: Collection[str]) -> str:
    """What Space Cloud's RS256-only verification will refuse among these (written) RSA keys' tokens: the
    other RSA algorithms each key and spec.algorithms allow ("" when none)."""
    refused: set[str] = set()
    names: list[str] = []
    for key in keys:
        others = key_algorithms(key) - {SPACE_CLOUD_ALG}
        if algorithms:
            others &= set(algorithms)
        if others:
            refused |= others
            names.append(key_name(key))
    if not names:
        return ""
    return (
        f"Space Cloud verifies {SPACE_CLOUD_ALG} only: tokens signed {', '.join(sorted(refused))} by key(s) "
        f"{_listed(names)} will be refused (set the keys' alg, or spec.algorithms, to {SPACE_CLOUD_ALG})"
    )
