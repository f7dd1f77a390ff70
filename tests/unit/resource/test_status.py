"""Status and conditions: shape, transitions, no-op detection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jwks_operator.keys.keyset import KeySet, Rejection
from jwks_operator.model.errors import FetchError, SpecError, TargetConflictError
from jwks_operator.resource.status import (
    REMOVING,
    Outcome,
    OutputStatus,
    build_status,
    merge_patch,
    new_problems,
    release_failed,
    timestamp,
)

T0 = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
KEYS = KeySet(({"kty": "RSA", "kid": "a", "alg": "RS256", "n": "x", "e": "AQAB"},))
GOOD = Outcome("https://idp/jwks", 1, "ConfigMap", "x-jwks", KEYS, None, T0, ("ProviderCache", "max-age"))


def cond(status: dict[str, object], kind: str) -> dict[str, object]:
    conditions = status["conditions"]
    assert isinstance(conditions, list)
    return next(c for c in conditions if c["type"] == kind)


def test_success_status() -> None:
    status = build_status(GOOD, None, T0)
    assert status == {
        "observedGeneration": 1,
        "source": "https://idp/jwks",
        "consecutiveFailures": 0,
        "keyCount": 1,
        "keys": [{"kid": "a", "kty": "RSA", "alg": "RS256"}],
        "target": {"kind": "ConfigMap", "name": "x-jwks"},
        "lastFetchTime": "2026-11-22T12:00:00Z",
        "refresh": {"reason": "ProviderCache", "message": "max-age"},
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "KeysPublished",
                "message": "1 key published to ConfigMap x-jwks",
                "lastTransitionTime": "2026-11-22T12:00:00Z",
                "observedGeneration": 1,
            },
            {
                "type": "Degraded",
                "status": "False",
                "reason": "AsExpected",
                "message": "all keys valid",
                "lastTransitionTime": "2026-11-22T12:00:00Z",
                "observedGeneration": 1,
            },
            {
                "type": "InsecureConfig",
                "status": "False",
                "reason": "AsExpected",
                "message": "no insecure settings",
                "lastTransitionTime": "2026-11-22T12:00:00Z",
                "observedGeneration": 1,
            },
        ],
    }


def test_insecure_settings_raise_a_condition() -> None:
    warned = Outcome(
        "u", 1, "ConfigMap", "x", KEYS, warnings=(("InsecureHttp", "http"), ("AudienceMissing", "aud"))
    )
    status = build_status(warned, None, T0)
    insecure = cond(status, "InsecureConfig")
    assert (insecure["status"], insecure["reason"], insecure["message"]) == (
        "True",
        "InsecureHttp",
        "http; aud",
    )
    assert cond(status, "Ready")["status"] == "True"
    assert new_problems(build_status(GOOD, None, T0), status) == [("InsecureHttp", "http; aud")]


def test_same_outcome_later_is_identical_so_nothing_is_written() -> None:
    first = build_status(GOOD, None, T0)
    again = build_status(GOOD, first, T0 + timedelta(minutes=5))
    assert again == first
    assert merge_patch(first, again) is None


def test_fetch_failure_keeps_ready_and_sets_degraded() -> None:
    first = build_status(GOOD, None, T0)
    failed = Outcome("u", 1, "ConfigMap", "x-jwks", KEYS, FetchError("HTTP 503"), T0, None, failures=2)
    status = build_status(failed, first, T0 + timedelta(minutes=1))
    assert cond(status, "Ready")["status"] == "True"
    assert cond(status, "Ready")["lastTransitionTime"] == timestamp(T0)
    assert "last update failed: HTTP 503" in str(cond(status, "Ready")["message"])
    assert cond(status, "Degraded") | {"lastTransitionTime": None} == {
        "type": "Degraded",
        "status": "True",
        "reason": "FetchFailed",
        "message": "HTTP 503; the 1 key(s) last published stay in ConfigMap x-jwks",
        "lastTransitionTime": None,
        "observedGeneration": 1,
    }
    assert cond(status, "Degraded")["lastTransitionTime"] == "2026-11-22T12:01:00Z"
    assert status["lastError"] == "HTTP 503"
    assert status["consecutiveFailures"] == 2
    assert new_problems(first, status) == [
        ("FetchFailed", "HTTP 503; the 1 key(s) last published stay in ConfigMap x-jwks")
    ]
    assert new_problems(status, status) == []
    patch = merge_patch(status, first)
    assert patch is not None
    assert patch["lastError"] is None


def test_failure_without_keys_is_not_ready() -> None:
    status = build_status(Outcome("u", 1, "ConfigMap", "x", None, FetchError("connect timeout")), None, T0)
    assert (cond(status, "Ready")["status"], cond(status, "Ready")["reason"]) == ("False", "FetchFailed")
    assert status["keyCount"] == 0
    assert "keys" not in status


def test_invalid_spec_is_not_ready_even_with_old_keys() -> None:
    error = SpecError("spec.audiences[0]", "must be a non-empty string")
    status = build_status(Outcome("invalid", 2, "ConfigMap", "x", key_set=KEYS, error=error), None, T0)
    ready = cond(status, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert ready["message"] == (
        "spec.audiences[0]: must be a non-empty string; the 1 key(s) last published stay in ConfigMap x"
    )
    assert status["observedGeneration"] == 2


def test_a_failed_write_says_the_target_may_not_hold_the_keys() -> None:
    error = TargetConflictError("ConfigMap x kept changing while being written (0 conflict(s)...)")
    failed = Outcome("u", 1, "ConfigMap", "x", KEYS, error, T0, write_failed=True)
    status = build_status(failed, None, T0)
    assert (cond(status, "Ready")["status"], cond(status, "Degraded")["reason"]) == ("True", "TargetConflict")
    assert str(cond(status, "Degraded")["message"]).endswith(
        "; ConfigMap x was not written, so it may not hold the 1 key(s) last published"
    )


def test_rejected_keys_degrade() -> None:
    keys = KeySet(KEYS.keys, (Rejection(1, "b", "use 'enc' is not a signature key"), Rejection(2, None, "x")))
    status = build_status(Outcome("u", 1, "ConfigMap", "x", keys), None, T0)
    assert cond(status, "Ready")["status"] == "True"
    degraded = cond(status, "Degraded")
    assert degraded["reason"] == "KeysRejected"
    assert (
        degraded["message"] == "2 key(s) rejected: key 1 (kid b): use 'enc' is not a signature key and 1 more"
    )
    assert status["rejectedKeys"] == [
        {"index": 1, "kid": "b", "reason": "use 'enc' is not a signature key"},
        {"index": 2, "reason": "x"},
    ]


def test_a_release_that_failed_says_what_the_deletion_waits_for_and_nothing_else_changes() -> None:
    before = build_status(GOOD, None, T0)
    held = OutputStatus(
        "istio/api", "RequestAuthentication", ("api",), False, "Forbidden", REMOVING + "no RBAC"
    )
    done = OutputStatus("nginx/", "Secret", ("a-jwk",), True, "Written", "1 key(s) in Secret a-jwk")
    later = T0 + timedelta(minutes=5)
    after = release_failed(before, (held, done), "HTTP 403", 1, later)
    assert [c["type"] for c in after["conditions"]] == [c["type"] for c in before["conditions"]]
    degraded = cond(after, "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "ReleaseFailed")
    assert degraded["message"] == (
        "deletion waits until this JwtSecret's entries are out of istio/api (finalizer "
        "jwks.dev/release-outputs; retried with backoff): no RBAC"
    )
    assert degraded["lastTransitionTime"] == timestamp(later)
    assert cond(after, "Ready") == cond(before, "Ready"), "the keys stay published until it is gone"
    assert [o["output"] for o in after["outputs"]] == ["istio/api", "nginx/"]
    patch = merge_patch(before, after)
    assert patch is not None
    assert set(patch) == {"conditions", "outputs"}
    assert new_problems(before, after) == [("ReleaseFailed", degraded["message"])]
    assert (
        merge_patch(after, release_failed(after, (held, done), "HTTP 403", 1, later + timedelta(1))) is None
    )
    no_output = release_failed(before, (), "Kubernetes API error (set finalizers): HTTP 500", 1, later)
    assert str(cond(no_output, "Degraded")["message"]).endswith(
        "its gateway outputs (finalizer "
        "jwks.dev/release-outputs; retried with backoff): Kubernetes API error (set finalizers): HTTP 500"
    )
