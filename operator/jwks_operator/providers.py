"""Identity providers whose JWK Set signs tokens for all of their customers (pure data)."""

from __future__ import annotations

# JWK Sets that sign tokens for every customer of a provider: only an audience check tells them apart.
_GOOGLE = "https://www.googleapis.com"
_ENTRA = "https://login.microsoftonline.com"
SHARED_JWKS = {
    f"{_GOOGLE}/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com": "Firebase Auth",
    f"{_GOOGLE}/oauth2/v3/certs": "Google Sign-In",
    f"{_GOOGLE}/oauth2/v1/certs": "Google Sign-In",
    "https://www.gstatic.com/iap/verify/public_key-jwk": "Google IAP",
    "https://firebaseappcheck.googleapis.com/v1/jwks": "Firebase App Check",
    f"{_ENTRA}/common/discovery/v2.0/keys": "Microsoft Entra ID (common)",
    f"{_ENTRA}/common/discovery/keys": "Microsoft Entra ID (common)",
    f"{_ENTRA}/organizations/discovery/v2.0/keys": "Microsoft Entra ID (organizations)",
    f"{_ENTRA}/consumers/discovery/v2.0/keys": "Microsoft accounts (consumers)",
}
