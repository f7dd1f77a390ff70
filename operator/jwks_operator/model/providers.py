"""Identity providers whose JWK Set signs tokens for all of their customers (pure data, and the match)."""

from __future__ import annotations

import re

from jwks_operator.model.urls import identity

# JWK Sets that sign tokens for every customer of a provider: only an audience check tells them apart.
# Keys are urls.identity() forms: host and path, lowercase, no scheme, query or trailing slash.
_GOOGLE = "www.googleapis.com"
SHARED_JWKS = {
    f"{_GOOGLE}/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com": "Firebase Auth",
    f"{_GOOGLE}/robot/v1/metadata/jwk/securetoken@system.gserviceaccount.com": "Firebase Auth",
    f"{_GOOGLE}/oauth2/v3/certs": "Google Sign-In",
    f"{_GOOGLE}/oauth2/v1/certs": "Google Sign-In",
    "www.gstatic.com/iap/verify/public_key-jwk": "Google IAP",
    "firebaseappcheck.googleapis.com/v1/jwks": "Firebase App Check",
    "appleid.apple.com/auth/keys": "Sign in with Apple",
    "gitlab.com/oauth/discovery/keys": "GitLab.com (CI/CD ID tokens of every project)",
    "login.botframework.com/v1/.well-known/keys": "Microsoft Bot Framework",
}
# GitHub Actions OIDC: one issuer (and per-enterprise issuers below it) for every repository.
_GITHUB_ACTIONS = re.compile(r"token\.actions\.githubusercontent\.com(/.*)?")
# Entra ID signs with the same keys for every tenant: /common, /organizations, /consumers and each
# /<tenant>/discovery[/v2.0]/keys serve them (only the audience, and the issuer, tell tenants apart).
_ENTRA = re.compile(
    r"login\.(microsoftonline\.com|windows\.net|microsoft\.com|microsoftonline\.us)/([^/]+)/discovery(/v2\.0)?/keys"
)
_ENTRA_TENANTS = {
    "common": "Microsoft Entra ID (common)",
    "organizations": "Microsoft Entra ID (organizations)",
    "consumers": "Microsoft accounts (consumers)",
}


def shared_provider(url: str) -> str | None:
    """The provider's name when `url`, however spelled, is a JWK Set shared by all of its customers."""
    key = identity(url)
    if key is None:
        return None
    if _GITHUB_ACTIONS.fullmatch(key):
        return "GitHub Actions OIDC (every repository)"
    entra = _ENTRA.fullmatch(key)
    if entra:
        return _ENTRA_TENANTS.get(entra[2], "Microsoft Entra ID (keys shared by all tenants)")
    return SHARED_JWKS.get(key)
