"""The benchmark's JwtSecrets: ~90% name one of up to 100 JWK URLs, ~10% carry a static JWK."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.material import public_jwk, rsa_key

from jwks_operator.model.names import GROUP, VERSION

NAMESPACES = 10
MAX_URLS = 100
STATIC_EVERY = 10  # every 10th object is static


@dataclass(frozen=True)
class Item:
    """One JwtSecret to create; `url` is None for a static one."""

    namespace: str
    name: str
    url: str | None
    provider: int | None  # index of the provider serving `url`

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    def body(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"audiences": ["bench-api"], "issuers": ["https://bench.example"]}
        if self.url is not None:
            spec["jwkUrl"] = self.url
        else:
            jwk = public_jwk(rsa_key(2048, 1), kid="bench-static", alg="RS256", use="sig")
            spec["static"] = {"jwks": {"keys": [jwk]}}
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "JwtSecret",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": spec,
        }


def namespaces(n: int) -> list[str]:
    """The namespaces the items of a run of `n` objects live in."""
    return [f"bench-{i}" for i in range(min(NAMESPACES, n))]


def items(n: int, provider_urls: list[str]) -> list[Item]:
    """`n` JwtSecrets spread over `provider_urls` (one base URL per provider) and query variants:
    distinct URLs = min(100, URL objects), each provider serving an equal share."""
    url_objects = n - n // STATIC_EVERY
    distinct = max(1, min(MAX_URLS, url_objects))
    urls = [
        (f"{provider_urls[j % len(provider_urls)]}?tenant={j}", j % len(provider_urls))
        for j in range(distinct)
    ]
    spaces = namespaces(n)
    result: list[Item] = []
    used = 0
    for i in range(n):
        ns, name = spaces[i % len(spaces)], f"jwt-{i:05d}"
        if (i + 1) % STATIC_EVERY == 0:
            result.append(Item(ns, name, None, None))
        else:
            url, provider = urls[used % distinct]
            used += 1
            result.append(Item(ns, name, url, provider))
    return result
