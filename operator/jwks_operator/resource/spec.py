"""Parse and validate a JwtSecret spec (pure; mirrors the CRD schema for API servers without CEL)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from jwks_operator.keys.keyset import ALGORITHMS, HMAC_ALGS, PRIVATE_MEMBERS
from jwks_operator.model.durations import parse_duration
from jwks_operator.model.errors import SpecError
from jwks_operator.model.freshness import RefreshPolicy
from jwks_operator.model.providers import shared_provider
from jwks_operator.model.urls import (
    MAX_URL_LENGTH as MAX_URL_LENGTH,  # re-exported: tests/unit/test_tables.py
)
from jwks_operator.model.urls import URL_RE, check_url, redacted

_URL_RE = URL_RE  # the CRD pattern, checked by urls.check_url (tests/unit/test_tables.py reads both)
_DNS_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
# The name of an object the operator reads (secretRef, caBundleRef): Kubernetes' own IsDNS1123Subdomain, the
# CRD's pattern for them (fullmatch: Python's `$` also matches before a final newline, RE2's does not).
# Anything else names no object, and `.` or `..` would reach the API as a path.
OBJECT_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
MAX_OBJECT_NAME = 253
_BLANK_RE = re.compile(r"^[\t\n\f\r ]*$")  # what fails the CRD's matches(r'\S') (RE2: \s is [\t\n\f\r ])
# The private JWK members the CRD's CEL rule rejects in spec.static.jwks.keys (the key would be exposed in
# the object), checked here too for API servers without CEL. CEL sees only the properties the CRD declares,
# and it declares the string-valued ones, not `oth` (a list, which a private RSA key carries beside `d`).
# keys.validate_jwk drops a key with any of keys.PRIVATE_MEMBERS.
CRD_PRIVATE_MEMBERS = tuple(m for m in PRIVATE_MEMBERS if m != "oth")
# The longest duration the API server's CEL duration() (Go's time.Duration) reads: 2562047h47m16.854775807s.
MAX_DURATION = (2**63 - 1) / 1e9

SourceKind = Literal["jwkUrl", "jwks", "pem", "secretRef"]


@dataclass(frozen=True, slots=True)
class SecretRef:
    """A key inside a Secret of the JwtSecret's namespace."""

    name: str
    key: str
    kid: str | None = None


@dataclass(frozen=True, slots=True)
class CaBundleRef:
    """A PEM CA bundle in a ConfigMap or Secret of the JwtSecret's namespace."""

    kind: Literal["ConfigMap", "Secret"]
    name: str
    key: str = "ca.crt"


@dataclass(frozen=True, slots=True)
class RefreshSpec:
    """Per-object refresh overrides in seconds (None: the operator-wide default)."""

    min_interval: float | None = None
    max_interval: float | None = None
    fallback_interval: float | None = None
    fallback_never: bool = False
    stale_after: float | None = None

    def policy(self, default: RefreshPolicy) -> RefreshPolicy:
        """The operator-wide policy with this object's overrides applied."""
        fallback = None if self.fallback_never else self.fallback_interval or default.fallback_interval
        return RefreshPolicy(
            min_interval=self.min_interval if self.min_interval is not None else default.min_interval,
            max_interval=self.max_interval if self.max_interval is not None else default.max_interval,
            fallback_interval=fallback,
            stale_after=self.stale_after if self.stale_after is not None else default.stale_after,
        )


@dataclass(frozen=True, slots=True)
class JwtSecretSpec:
    """A validated JwtSecret spec."""

    kind: SourceKind
    jwk_url: str | None = None
    allow_insecure_http: bool = False
    jwks: Mapping[str, Any] | None = None
    pem: str | None = None
    secret_ref: SecretRef | None = None
    kid: str | None = None
    audiences: tuple[str, ...] = ()
    issuers: tuple[str, ...] = ()
    algorithms: tuple[str, ...] = ()
    target_name: str | None = None
    target_shared: bool = False
    target_allow: tuple[str, ...] = ()  # who may join the shared target this JwtSecret creates ("*": any)
    refresh: RefreshSpec = field(default_factory=RefreshSpec)
    retain_removed_for: float = 0.0
    allow_missing_audience: bool = False
    ca_bundle: CaBundleRef | None = None

    def shared_provider(self) -> str | None:
        """The provider's name when jwkUrl is a JWK Set shared by all of its customers."""
        return None if self.jwk_url is None else shared_provider(self.jwk_url)

    def warnings(self) -> list[tuple[str, str]]:
        """(reason, message) for settings that work but weaken verification."""
        found: list[tuple[str, str]] = []
        if self.jwk_url is not None and not self.jwk_url.startswith("https://"):
            found.append(("InsecureHttp", "spec.jwkUrl uses http: keys can be replaced in transit"))
        if self.jwk_url is not None and not self.audiences:
            found.append(
                ("AudienceMissing", "spec.audiences is empty: tokens for any audience of this issuer verify")
            )
        return found

    @property
    def symmetric(self) -> bool:
        """Whether the keys are secret (HMAC) and must go to a Secret."""
        return self.kind == "secretRef"

    def describe_source(self) -> str:
        """A short human-readable description of the source (printer column), credentials redacted."""
        if self.kind == "jwkUrl":
            assert self.jwk_url is not None
            return redacted(self.jwk_url)
        if self.kind == "secretRef":
            assert self.secret_ref is not None
            return f"static:secret/{self.secret_ref.name}"
        return f"static:{self.kind}"

    def policy_source(self) -> dict[str, str]:
        """The `source` entry of policy.json."""
        if self.kind == "jwkUrl":
            assert self.jwk_url is not None
            return {"type": "jwkUrl", "url": redacted(self.jwk_url)}
        if self.kind == "secretRef":
            assert self.secret_ref is not None
            return {"type": "secretRef", "secret": self.secret_ref.name}
        return {"type": self.kind}


def target_name(name: str, spec: JwtSecretSpec) -> str:
    """The name of the published ConfigMap/Secret."""
    return spec.target_name or f"{name}-jwks"


def parse_spec(raw: Mapping[str, Any] | None) -> JwtSecretSpec:
    """Validate a raw spec and return it typed; raise SpecError naming the offending field."""
    if not isinstance(raw, Mapping):
        raise SpecError("spec", "must be an object")
    url = _opt_str(raw, "jwkUrl", "spec.jwkUrl")
    static = raw.get("static")
    if static is not None and not isinstance(static, Mapping):
        raise SpecError("spec.static", "must be an object")
    if (url is None) == (static is None):
        raise SpecError("spec", "exactly one of spec.jwkUrl or spec.static must be set")
    insecure = _bool(raw, "allowInsecureHttp")

    common: dict[str, Any] = {
        "allow_insecure_http": insecure,
        "audiences": _str_list(raw, "audiences"),
        "issuers": _str_list(raw, "issuers"),
        "algorithms": _algorithms(raw),
        **_target(raw),
        "refresh": _refresh(raw),
        "retain_removed_for": _retain(raw),
        "allow_missing_audience": _bool(raw, "allowMissingAudience"),
    }
    if url is not None:
        check_url(url, insecure)
        common["ca_bundle"] = _ca_bundle(raw)
        if any(alg in HMAC_ALGS for alg in common["algorithms"]):
            raise SpecError(
                "spec.algorithms",
                "HS* cannot be used with spec.jwkUrl (a published key used as an HMAC secret lets "
                "anyone forge tokens)",
            )
        return JwtSecretSpec(kind="jwkUrl", jwk_url=url, **common)
    assert static is not None
    for key in ("caBundleRef", "refresh", "rotation"):  # the CRD's CEL rules, for servers without CEL
        if raw.get(key) is not None:
            raise SpecError(f"spec.{key}", "only applies to spec.jwkUrl")
    return _parse_static(static, common)


def _parse_static(static: Mapping[str, Any], common: dict[str, Any]) -> JwtSecretSpec:
    present = [k for k in ("jwks", "pem", "secretRef") if static.get(k) is not None]
    if len(present) != 1:
        raise SpecError(
            "spec.static",
            "exactly one of spec.static.jwks, spec.static.pem or spec.static.secretRef must be set",
        )
    kid = _opt_str(static, "kid", "spec.static.kid")
    if kid is not None and present[0] != "pem":
        raise SpecError(
            "spec.static.kid", "only applies to spec.static.pem (set kid in the JWKs or in secretRef)"
        )
    if present[0] == "jwks":
        jwks = static["jwks"]
        if not isinstance(jwks, Mapping) or not isinstance(jwks.get("keys"), list):
            raise SpecError("spec.static.jwks.keys", "must be a list of JWKs")
        if not jwks["keys"]:
            raise SpecError("spec.static.jwks.keys", "must contain at least one key")
        if any(isinstance(k, Mapping) and any(m in k for m in CRD_PRIVATE_MEMBERS) for k in jwks["keys"]):
            raise SpecError(
                "spec.static.jwks.keys",
                f"private key members ({', '.join(CRD_PRIVATE_MEMBERS)}) are not allowed; "
                "give public keys only",
            )
        return JwtSecretSpec(kind="jwks", jwks=jwks, kid=kid, **common)
    if present[0] == "pem":
        pem = _opt_str(static, "pem", "spec.static.pem")
        return JwtSecretSpec(kind="pem", pem=pem, kid=kid, **common)
    ref = static["secretRef"]
    if not isinstance(ref, Mapping):
        raise SpecError("spec.static.secretRef", "must be an object with name and key")
    name = _object_name(ref, "spec.static.secretRef.name")
    key = _opt_str(ref, "key", "spec.static.secretRef.key")
    if key is None:
        raise SpecError("spec.static.secretRef.key", "is required")
    ref_kid = _opt_str(ref, "kid", "spec.static.secretRef.kid")
    return JwtSecretSpec(kind="secretRef", secret_ref=SecretRef(name, key, ref_kid), **common)


def _ca_bundle(raw: Mapping[str, Any]) -> CaBundleRef | None:
    ref = _opt_obj(raw, "caBundleRef")
    if ref is None:
        return None
    kind = ref.get("kind", "ConfigMap")
    if kind not in ("ConfigMap", "Secret"):
        raise SpecError("spec.caBundleRef.kind", "must be ConfigMap or Secret")
    name = _object_name(ref, "spec.caBundleRef.name")
    return CaBundleRef(kind, name, _opt_str(ref, "key", "spec.caBundleRef.key") or "ca.crt")


def _object_name(ref: Mapping[str, Any], path: str) -> str:
    """The required `name` of a referenced object: an RFC 1123 subdomain, as Kubernetes names objects."""
    name = _opt_str(ref, "name", path)
    if name is None:
        raise SpecError(path, "is required")
    if len(name) > MAX_OBJECT_NAME or not OBJECT_NAME_RE.fullmatch(name):
        problem = f"must be a lowercase RFC 1123 subdomain name (at most {MAX_OBJECT_NAME} characters)"
        raise SpecError(path, problem)
    return name


def _opt_obj(raw: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    """spec.<key> when it is an object, None when absent."""
    value = raw.get(key)
    if value is not None and not isinstance(value, Mapping):
        raise SpecError(f"spec.{key}", "must be an object")
    return value


def _bool(raw: Mapping[str, Any], key: str, path: str | None = None) -> bool:
    value = raw.get(key, False)
    if not isinstance(value, bool):
        raise SpecError(path or f"spec.{key}", "must be a boolean")
    return value


def _opt_str(raw: Mapping[str, Any], key: str, path: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise SpecError(path, "must be a string")
    if not value:
        raise SpecError(path, "must not be empty")
    return value


def _str_list(raw: Mapping[str, Any], key: str, path: str | None = None) -> tuple[str, ...]:
    value, path = raw.get(key), path or f"spec.{key}"
    if value is None:
        return ()
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise SpecError(path, "must be a list of strings")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise SpecError(f"{path}[{i}]", "must be a non-empty string")
        if item in value[:i]:
            raise SpecError(f"{path}[{i}]", f"duplicate value {item!r}")
    if any(_BLANK_RE.match(item) for item in value):  # the CRD's CEL rule, for servers without CEL
        raise SpecError(path, "values must not be blank")
    return tuple(value)


def _algorithms(raw: Mapping[str, Any]) -> tuple[str, ...]:
    algs = _str_list(raw, "algorithms")
    for i, alg in enumerate(algs):
        if alg not in ALGORITHMS:
            raise SpecError(
                f"spec.algorithms[{i}]",
                f"unsupported algorithm {alg!r}; allowed: {', '.join(ALGORITHMS)}",
            )
    return algs


def _target(raw: Mapping[str, Any]) -> dict[str, Any]:
    target = _opt_obj(raw, "target") or {}
    name = _opt_str(target, "name", "spec.target.name")
    if name is not None and not _dns_name(name):
        raise SpecError("spec.target.name", "must be a lowercase RFC 1123 subdomain name")
    shared = _bool(target, "shared", "spec.target.shared")
    allow = _str_list(target, "allow", "spec.target.allow")
    if allow and not shared:
        raise SpecError("spec.target.allow", "only applies with spec.target.shared: true")
    for i, who in enumerate(allow):
        if who != "*" and not _dns_name(who):
            raise SpecError(f"spec.target.allow[{i}]", 'must be a JwtSecret name or "*"')
    return {"target_name": name, "target_shared": shared, "target_allow": allow}


def _dns_name(name: str) -> bool:
    return len(name) <= 253 and bool(_DNS_SUBDOMAIN_RE.match(name))


def _duration(raw: Mapping[str, Any], key: str, path: str, *, positive: bool = True) -> float | None:
    value = _opt_str(raw, key, path)
    if value is None:
        return None
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise SpecError(path, str(exc)) from None
    if positive and seconds <= 0:
        raise SpecError(path, "must be greater than zero")
    if seconds > MAX_DURATION:
        raise SpecError(path, f"{value!r} is out of range (at most 2562047h)")
    return seconds


def _refresh(raw: Mapping[str, Any]) -> RefreshSpec:
    refresh = _opt_obj(raw, "refresh")
    if refresh is None:
        return RefreshSpec()
    never = refresh.get("fallbackInterval") == "Never"
    spec = RefreshSpec(
        min_interval=_duration(refresh, "minInterval", "spec.refresh.minInterval"),
        max_interval=_duration(refresh, "maxInterval", "spec.refresh.maxInterval"),
        fallback_interval=None
        if never
        else _duration(refresh, "fallbackInterval", "spec.refresh.fallbackInterval"),
        fallback_never=never,
        stale_after=_duration(refresh, "staleAfter", "spec.refresh.staleAfter"),
    )
    if spec.min_interval and spec.max_interval and spec.min_interval > spec.max_interval:
        raise SpecError("spec.refresh.minInterval", "must not be greater than spec.refresh.maxInterval")
    return spec


def _retain(raw: Mapping[str, Any]) -> float:
    rotation = _opt_obj(raw, "rotation")
    if rotation is None:
        return 0.0
    seconds = _duration(rotation, "retainRemovedFor", "spec.rotation.retainRemovedFor", positive=False)
    return seconds or 0.0
