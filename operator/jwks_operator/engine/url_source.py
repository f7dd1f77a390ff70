"""One JWK URL's state, shared by all JwtSecrets naming it: its last good document (a bad one never
replaces it), the document parsed per algorithm allow-list, the keys it dropped while a subscriber
retains them, and its health. All of it is bounded (#14): dropped keys at most MAX_KEYS, parses for at
most MAX_PARSED algorithm lists."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from jwks_operator.engine.tracked import ObjKey
from jwks_operator.keys import keyset as keylib
from jwks_operator.keys.keyset import KeySet
from jwks_operator.model.errors import FetchError, JwksError, StaleError
from jwks_operator.model.freshness import RefreshPolicy
from jwks_operator.model.urls import redacted
from jwks_operator.resource.spec import CaBundleRef
from jwks_operator.resource.status import timestamp

RETAIN_MARGIN = 0.05  # re-publish this long after a retained key expires, so it is surely gone
MAX_PARSED = 8  # algorithm allow-lists whose parse of a document is kept per URL (others: parsed again)


@dataclass(slots=True)
class UrlSource:
    """One JWK URL (with one TLS trust setting) shared by all JwtSecrets naming it."""

    key: str
    url: str
    allow_http: bool
    namespace: str | None = None  # where ca lives
    ca: CaBundleRef | None = None
    subscribers: dict[ObjKey, RefreshPolicy] = field(default_factory=dict)
    document: bytes | None = None
    etag: str | None = None
    last_modified: str | None = None
    fetched_at: datetime | None = None  # last successful fetch (200 or 304)
    changed_at: datetime | None = None  # when the document held now was fetched (its first 200)
    basis: tuple[str, str] | None = None  # (reason, message): why it is refreshed when it is
    expires_at: datetime | None = None  # when the provider said the keys need refreshing
    next_refresh: datetime | None = None
    last_attempt: float = float("-inf")  # monotonic
    error: FetchError | None = None
    failures: int = 0
    attempted: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    current: KeySet | None = None  # the document's keys (no algorithm allow-list)
    # The document parsed per algorithm allow-list: the MAX_PARSED used last (distinct lists are unbounded).
    parsed: dict[tuple[str, ...], KeySet | JwksError] = field(default_factory=dict)
    # Keys the provider dropped, by thumbprint, oldest first: only while a subscriber retains them, MAX_KEYS.
    removed: dict[str, tuple[dict[str, Any], datetime]] = field(default_factory=dict)
    retaining: dict[ObjKey, float] = field(default_factory=dict)  # each subscriber's retainRemovedFor

    label: str = field(init=False)  # the URL as it may be shown (metrics, logs): see __post_init__

    def __post_init__(self) -> None:
        """The label is urls.redacted(url); when that hid something, a short hash of the source tells
        apart URLs that differ only in what was hidden (Azure B2C's ?p=policy), so their metric series
        do not overwrite each other."""
        shown = redacted(self.url)
        if shown != self.url:
            shown += f" #{hashlib.sha256(self.key.encode()).hexdigest()[:8]}"
        self.label = shown

    def key_set(self, algorithms: tuple[str, ...]) -> KeySet:
        """The last good document parsed for an algorithm allow-list (cached per document)."""
        if self.document is None:
            raise self.error or FetchError("not fetched yet")
        if not algorithms and self.current is not None:
            return self.current
        result = self.parsed.pop(algorithms, None)  # put back last: the least recently used goes first
        if result is None:
            try:
                result = keylib.parse_jwks_document(self.document, algorithms=algorithms)
            except JwksError as exc:
                result = exc
        self.parsed[algorithms] = result
        while len(self.parsed) > MAX_PARSED:
            del self.parsed[next(iter(self.parsed))]
        if isinstance(result, JwksError):
            raise result
        return result

    def keys_for(
        self, algorithms: tuple[str, ...], retain_for: float, now: datetime
    ) -> tuple[KeySet, float | None]:
        """The keys to publish: the document's plus those it dropped less than `retain_for` seconds
        ago; and the seconds until the soonest of those expires (None: none retained)."""
        current = self.key_set(algorithms)
        self.prune(now)
        retained = [(jwk, since) for jwk, since in self.removed.values() if _age(since, now) < retain_for]
        retained = retained[max(len(retained) - (keylib.MAX_KEYS - len(current.keys)), 0) :]  # newest fit
        if not retained:
            return current, None
        combined = keylib.build_key_set([*current.keys, *(jwk for jwk, _ in retained)], algorithms=algorithms)
        expiry = retain_for - max(_age(since, now) for _, since in retained)  # > 0: still retained
        return KeySet(combined.keys, current.rejected), expiry + RETAIN_MARGIN

    def accept(self, body: bytes, parsed: KeySet, now: datetime) -> None:
        """Take a new valid document; remember which keys it dropped while a subscriber retains them."""
        new_prints = {keylib.thumbprint(k) for k in parsed.keys}
        for tp in new_prints:
            self.removed.pop(tp, None)
        if self.current is not None and max(self.retaining.values(), default=0.0) > 0:
            for jwk in self.current.keys:
                tp = keylib.thumbprint(jwk)
                if tp not in new_prints and tp not in self.removed:
                    self.removed[tp] = (jwk, now)  # after the others: `removed` stays oldest first
        self.document, self.current, self.parsed, self.changed_at = body, parsed, {}, now
        self.prune(now)

    def prune(self, now: datetime) -> None:
        """Forget removed keys that no subscriber retains any more, and all but the newest MAX_KEYS (a set
        publishes at most MAX_KEYS keys: a provider dropping fresh keys at each fetch grows nothing)."""
        longest = max(self.retaining.values(), default=0.0)
        kept = [(tp, (jwk, t)) for tp, (jwk, t) in self.removed.items() if _age(t, now) < longest]
        self.removed = dict(kept[-keylib.MAX_KEYS :])

    def health(self, policy: RefreshPolicy, now: datetime) -> JwksError | None:
        """Why the published keys may be wrong: the last fetch error, made a StaleError once the keys
        are more than the policy's staleAfter past their refresh time."""
        error = self.error
        if error is None or self.expires_at is None:
            return error
        if now <= self.expires_at + timedelta(seconds=policy.stale_after):
            return error
        return StaleError(
            f"keys are stale: due for refresh at {timestamp(self.expires_at)}, "
            f"refreshes failing since: {error.message}"
        )


def _age(since: datetime, now: datetime) -> float:
    return (now - since).total_seconds()
