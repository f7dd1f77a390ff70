"""The verification rules gateways apply, as a library (`from jwks_operator.verify import Verifier`): the
published data read strictly (`data`) and tokens checked against it (`verifier`). May import `model` and
`keys`, nothing that needs kopf or kubernetes (gateways written in Python embed it)."""

from jwks_operator.verify.profiles import PROFILES, SEED, Profile
from jwks_operator.verify.verifier import (
    DirectoryVerifier,
    KeySource,
    MissingPolicyError,
    Policy,
    PublishedDataError,
    Result,
    Verifier,
    sources_from_data,
    strip_bearer,
    verify_with,
)

__all__ = [
    "PROFILES",
    "SEED",
    "DirectoryVerifier",
    "KeySource",
    "MissingPolicyError",
    "Policy",
    "Profile",
    "PublishedDataError",
    "Result",
    "Verifier",
    "sources_from_data",
    "strip_bearer",
    "verify_with",
]
