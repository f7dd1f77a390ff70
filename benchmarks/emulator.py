"""The test emulator, trimmed for long runs: requests are tallied by client and verb, then dropped.

kmock keeps every request it served (`ApiServer._requests`: method, headers, body, parsed JSON and
the aiohttp request itself) for assertions. At 10,000 objects that log holds tens of thousands of
requests; the benchmark needs only counts, so `TallyingApiServer` counts each request as it arrives
and drops it from the log once served.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping

import aiohttp.web
import attrs
import kmock
from tests.harness.k8s import ApiServer, EmulatedCluster
from tests.harness.k8s import verb as _verb

from jwks_operator.model.names import GROUP, PLURAL, VERSION

Tally = collections.Counter[tuple[str, str, str]]  # (client, verb, resource[/subresource])
JWTSECRETS = (GROUP, VERSION, PLURAL)
CONFIGMAPS = ("", "v1", "configmaps")

# Who sent a request, by User-Agent prefix (the operator's own client and Kopf's are one client).
CLIENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("operator", ("jwks-operator/", "kopf/")),
    ("minimal", ("jwks-minimal/",)),
)


def client_of(headers: Mapping[str, str]) -> str:
    """ "operator", "minimal" or "harness" (anything else), from the User-Agent header."""
    return client_of_agent(user_agent(headers))


def user_agent(headers: Mapping[str, str]) -> str:
    """The User-Agent header's value ("" when absent)."""
    return next((v for k, v in headers.items() if k.lower() == "user-agent"), "")


def client_of_agent(agent: str) -> str:
    """ "operator", "minimal" or "harness" (anything else), from a User-Agent."""
    for name, prefixes in CLIENTS:
        if agent.startswith(prefixes):
            return name
    return "harness"


@attrs.define(kw_only=True)
class TallyingApiServer(ApiServer):
    """An ApiServer that counts requests by (client, verb, resource) instead of keeping them."""

    tally: Tally = attrs.field(factory=collections.Counter, init=False)

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        res = request.resource
        if res is not None and res.plural:
            resource = res.plural + (f"/{request.subresource}" if request.subresource else "")
            verb = _verb(request)
        else:
            resource, verb = "(discovery)", "get"
        self.tally[(client_of(request.headers), verb, resource)] += 1
        try:
            return await super()._handle(request)
        finally:  # kmock's reactions (discovery) look the request up in the log while it is served
            for index in range(len(self._requests) - 1, -1, -1):
                if self._requests[index] is request:
                    del self._requests[index]
                    break


class BenchCluster(EmulatedCluster):
    """EmulatedCluster serving a TallyingApiServer."""

    server = TallyingApiServer

    def __enter__(self) -> BenchCluster:
        super().__enter__()
        return self

    def tally(self) -> Tally:
        """A copy of the request counts so far."""
        return self.call(lambda api: collections.Counter(_tallying(api).tally))


def _tallying(api: ApiServer) -> TallyingApiServer:
    assert isinstance(api, TallyingApiServer)
    return api
