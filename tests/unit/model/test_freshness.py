"""Cache policy: provider headers to the next refresh, clamped."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from jwks_operator.model.freshness import Freshness, RefreshPolicy, freshness, parse_cache_control

NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
DATE = "Sun, 22 Nov 2026 12:00:00 GMT"
POLICY = RefreshPolicy(min_interval=60, max_interval=86400, fallback_interval=3600)


@pytest.mark.parametrize(
    ("headers", "lifetime", "always"),
    [
        ({"Cache-Control": "public, max-age=19800, must-revalidate, no-transform"}, 19800, False),
        ({"cache-control": "max-age=600, s-maxage=1200"}, 1200, False),
        ({"Cache-Control": "max-age=600", "Age": "100"}, 500, False),
        ({"Cache-Control": "max-age=600", "Age": "900"}, 0, True),
        ({"Cache-Control": "max-age=0"}, 0, True),
        ({"Cache-Control": "no-cache"}, None, True),
        ({"Cache-Control": "no-store, max-age=600"}, None, True),
        ({"Cache-Control": 'max-age="300"'}, 300, False),
        ({"Cache-Control": "max-age=abc"}, None, False),
        ({"Expires": "Sun, 22 Nov 2026 13:00:00 GMT", "Date": DATE}, 3600, False),
        ({"Expires": "Sun, 22 Nov 2026 13:00:00 GMT"}, 3600, False),
        ({"Expires": "Sun, 22 Nov 2026 13:00:00 GMT", "Date": DATE, "Age": "600"}, 3000, False),
        ({"Expires": "0"}, 0, True),
        ({"Expires": "Sun, 22 Nov 2026 11:00:00 GMT", "Date": DATE}, 0, True),
        ({"Cache-Control": "public", "Expires": "Sun, 22 Nov 2026 12:10:00 GMT", "Date": DATE}, 600, False),
        ({}, None, False),
    ],
)
def test_freshness(headers: dict[str, str], lifetime: float | None, always: bool) -> None:
    found = freshness(headers, NOW)
    assert (found.lifetime, found.revalidate_always) == (lifetime, always)


@pytest.mark.parametrize(
    ("headers", "reason", "message"),
    [
        (
            {"Cache-Control": "max-age=19800"},
            "ProviderCache",
            "refreshed when the provider's max-age says (within 1m and 24h)",
        ),
        (
            {"Cache-Control": "max-age=600, s-maxage=1200"},
            "ProviderCache",
            "refreshed when the provider's s-maxage says (within 1m and 24h)",
        ),
        (
            {"Expires": "Sun, 22 Nov 2026 13:00:00 GMT", "Date": DATE},
            "ProviderCache",
            "refreshed when the provider's Expires says (within 1m and 24h)",
        ),
        (
            {"Cache-Control": "max-age=4"},
            "MinInterval",
            "the provider's max-age 4s is below minInterval: refreshed every 1m",
        ),
        (
            {"Cache-Control": "max-age=0"},
            "MinInterval",
            "the provider's max-age 0s is below minInterval: refreshed every 1m",
        ),
        (
            {"Cache-Control": "max-age=999999"},
            "MaxInterval",
            "the provider's max-age 999999s is above maxInterval: refreshed every 24h",
        ),
        (
            {"Cache-Control": "no-store, max-age=600"},
            "NoCache",
            "the provider sends Cache-Control no-store: revalidated every 1m",
        ),
        ({}, "Fallback", "the provider sends no caching headers: fallbackInterval, every 1h"),
    ],
)
def test_the_basis_says_why_in_words_that_do_not_move(
    headers: dict[str, str], reason: str, message: str
) -> None:
    assert freshness(headers, NOW).basis(POLICY) == (reason, message)
    later = {**headers, "Age": "30"} if "max-age=19800" in str(headers) else headers
    assert freshness(later, NOW).basis(POLICY) == (reason, message), "a provider's moving Age writes nothing"


def test_never_basis() -> None:
    never = RefreshPolicy(fallback_interval=None)
    assert Freshness(None).basis(never)[0] == "Never"


@pytest.mark.parametrize(
    ("fresh", "interval"),
    [
        (Freshness(15), 60),
        (Freshness(19800), 19800),
        (Freshness(365 * 86400), 86400),
        (Freshness(None), 3600),
        (Freshness(None, revalidate_always=True), 60),
        (Freshness(0, revalidate_always=True), 60),
    ],
)
def test_next_interval_is_clamped(fresh: Freshness, interval: float) -> None:
    assert fresh.next_interval(POLICY) == interval


def test_never_refresh_without_headers_when_fallback_is_none() -> None:
    never = RefreshPolicy(fallback_interval=None)
    assert Freshness(None).next_interval(never) is None
    assert Freshness(600).next_interval(never) == 600


def test_parse_cache_control() -> None:
    assert parse_cache_control('Public, MAX-AGE=5, x="a b",, ') == {
        "public": None,
        "max-age": "5",
        "x": "a b",
    }


def test_backoff_grows_caps_jitters_and_honours_retry_after() -> None:
    from jwks_operator.engine.engine import Backoff

    exact = Backoff(base=5, cap=60, jitter=0)
    assert [exact.delay(n) for n in (1, 2, 3, 4, 5, 10)] == [5, 10, 20, 40, 60, 60]
    assert exact.delay(1, retry_after=30) == 30
    assert exact.delay(4, retry_after=30) == 40
    jittery = [Backoff(base=10, jitter=0.2).delay(1) for _ in range(200)]
    assert all(8 <= d <= 12 for d in jittery)
    assert max(jittery) - min(jittery) > 1


# --- boundaries and less travelled paths (issue #28, mutation testing) -----------------------------------


def test_the_default_policy_is_the_documented_one() -> None:
    """60 s, 24 h and 1 h: the defaults of --min-interval, --max-interval and --fallback-interval, and of
    the CRD's descriptions; keys 24 h past their refresh time are stale."""
    default = RefreshPolicy()
    assert (default.min_interval, default.max_interval, default.fallback_interval) == (60.0, 86400.0, 3600.0)
    assert default.stale_after == 86400.0


@pytest.mark.parametrize(
    ("max_age", "reason"),
    [(59, "MinInterval"), (60, "ProviderCache"), (86400, "ProviderCache"), (86401, "MaxInterval")],
)
def test_the_basis_at_exactly_min_and_max_interval(max_age: int, reason: str) -> None:
    """A lifetime equal to a bound is within the bounds: the provider's value is used as is."""
    found = freshness({"Cache-Control": f"max-age={max_age}"}, NOW)
    assert found.basis(POLICY)[0] == reason
    assert found.next_interval(POLICY) == min(max(max_age, 60), 86400)


@pytest.mark.parametrize("directive", ["no-cache", "no-store"])
def test_no_cache_and_no_store_are_named_as_sent(directive: str) -> None:
    found = freshness({"Cache-Control": f"private, {directive}"}, NOW)
    assert (found.lifetime, found.revalidate_always, found.header) == (None, True, directive)
    assert found.basis(POLICY) == (
        "NoCache",
        f"the provider sends Cache-Control {directive}: revalidated every 1m",
    )


@pytest.mark.parametrize("value", ["-1", "-600"])
def test_a_negative_max_age_is_no_lifetime(value: str) -> None:
    assert freshness({"Cache-Control": f"max-age={value}"}, NOW) == Freshness(None)
    assert freshness({"Cache-Control": f"max-age={value}", "Age": "-5"}, NOW) == Freshness(None)
    assert freshness({"Cache-Control": "max-age=0", "Age": "-5"}, NOW) == Freshness(0.0, True, "max-age")


def test_an_invalid_expires_is_already_expired() -> None:
    assert freshness({"Expires": "tomorrow"}, NOW) == Freshness(0.0, revalidate_always=True, header="Expires")


def test_expires_counts_from_the_providers_date_not_ours() -> None:
    """Clocks differ: the lifetime is Expires - Date, whatever our clock says."""
    headers = {"Expires": "Sun, 22 Nov 2026 09:00:00 GMT", "Date": "Sun, 22 Nov 2026 08:00:00 GMT"}
    assert freshness(headers, NOW) == Freshness(3600.0, header="Expires")


def test_expires_in_another_zone_or_without_one() -> None:
    """+0200 is two hours ahead of GMT; -0000 (no zone known, RFC 5322) is read as UTC."""
    ahead = {"Expires": "Sun, 22 Nov 2026 15:00:00 +0200", "Date": DATE}
    assert freshness(ahead, NOW).lifetime == 3600.0
    unknown = {"Expires": "Sun, 22 Nov 2026 13:00:00 -0000"}
    assert freshness(unknown, NOW).lifetime == 3600.0
    assert freshness({**unknown, "Date": "Sun, 22 Nov 2026 12:30:00 -0000"}, NOW).lifetime == 1800.0


def test_parse_cache_control_strips_quotes_only() -> None:
    assert parse_cache_control('x="BOX", y=X1X, private="X"') == {"x": "BOX", "y": "X1X", "private": "X"}
