"""Errors that carry a condition reason and a message safe to show in status and events."""

from __future__ import annotations


class JwksError(Exception):
    """Base error: `reason` is a CamelCase condition reason, `message` is safe to publish."""

    reason = "Error"
    # Whether the JwtSecret stays Ready on the previously published keys despite this error.
    ready_with_old_keys = True

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SpecError(JwksError):
    """The spec is invalid; `field` names the offending field."""

    reason = "InvalidSpec"
    ready_with_old_keys = False

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class AudienceRequiredError(JwksError):
    """A JWK Set shared by every customer of its provider (Firebase, Google, Microsoft Entra ID common...)
    without spec.audiences or spec.allowMissingAudience: nothing is fetched or published."""

    reason = "AudienceRequired"
    ready_with_old_keys = False


class KeySetError(JwksError):
    """No usable key could be resolved from the source."""

    reason = "NoValidKeys"


class SecretRefError(JwksError):
    """The referenced Secret, or its key, is missing (a secret too short for HMAC is a KeySetError)."""

    reason = "SecretNotFound"


class SecretNotAvailableError(SecretRefError):
    """spec.static.secretRef names a Secret this JwtSecret may not use: absent, without the key, too short
    for HMAC, or not opted in (jwks.dev/allow-jwtsecrets). One message for all, so that the status says
    nothing about a Secret that did not opt in."""

    reason = "SecretNotAvailable"


class FetchError(JwksError):
    """Fetching the JWK URL failed; `retry_after` is the server's hint in seconds, if any."""

    reason = "FetchFailed"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TargetConflictError(JwksError):
    """The target exists and is not ours to write (unmanaged, another object's, or shared where the spec
    does not say so, or the reverse), or it kept changing while being written."""

    reason = "TargetConflict"


class OutputTooLargeError(JwksError):
    """The object to write would exceed what the API server stores (1 MiB): nothing is written, the keys
    last published stay."""

    reason = "OutputTooLarge"


class StaleError(JwksError):
    """Refreshes keep failing and the keys are more than staleAfter past their refresh time."""

    reason = "Stale"
    ready_with_old_keys = False


class ApiCallError(JwksError):
    """A Kubernetes API call failed (an HTTP error its caller did not handle, or no connection): retried
    with backoff, last keys kept."""

    reason = "ApiError"

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class KindNotServedError(ApiCallError):
    """The API server serves no such kind (a gateway's CRD is not installed): no object of it exists, so
    none holds anything of ours to take out, and a write cannot succeed until the CRD is installed."""

    reason = "KindNotInstalled"

    def __init__(self, message: str) -> None:
        super().__init__(message, status=404)
