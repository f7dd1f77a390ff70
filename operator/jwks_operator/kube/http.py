"""JSON requests to the API server over the kubernetes client's connection pool and credentials, without
its models.

The official client's generated methods validate every argument (pydantic), convert dicts to and from
model classes and leave unread answers holding their connection; the operator sends and reads plain
JSON, so it uses only the client's configuration: host, TLS, proxy and the bearer token (refreshed by the
client's hook, as for a ServiceAccount's projected token). A non-2xx answer raises the client's
ApiException (status, reason, body, headers), as the generated methods do.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
# A refused connection is tried again, a lost answer once for an idempotent method (GET, PUT, DELETE), a
# status never: a 429 goes to the lanes, which hold every call back for its Retry-After.
RETRIES = urllib3.Retry(
    total=3, connect=3, read=1, status=0, redirect=0, other=0, respect_retry_after_header=False
)


def encode(body: Any) -> bytes:
    """Compact JSON, as sent."""
    return json.dumps(body, separators=(",", ":")).encode()


def path(*parts: str) -> str:
    """An API path from its segments, each escaped (names come from specs and objects)."""
    return "/" + "/".join(quote(part, safe="") for part in parts if part)


def core_path(plural: str, namespace: str, name: str = "") -> str:
    """/api/v1/namespaces/NS/PLURAL[/NAME]."""
    return path("api", "v1", "namespaces", namespace, plural, name)


def custom_path(group: str, version: str, plural: str, namespace: str, name: str = "", sub: str = "") -> str:
    """/apis/GROUP/VERSION/namespaces/NS/PLURAL[/NAME[/SUB]]."""
    return path("apis", group, version, "namespaces", namespace, plural, name, sub)


class ApiHttp:
    """Blocking JSON requests (call from a thread); each answer is read to its end, so its connection
    goes back to the pool."""

    def __init__(self, api_client: client.ApiClient, timeout: float) -> None:
        self.api_client: Any = api_client
        self.timeout = urllib3.Timeout(total=timeout)

    def request(
        self, method: str, where: str, body: Any = None, *, content_type: str = JSON
    ) -> Mapping[str, Any]:
        """Send one request; the decoded answer ({} when empty). ApiException on a non-2xx answer."""
        api = self.api_client
        method, url, headers, _, _ = api.param_serialize(
            method,
            where,
            header_params={"Accept": JSON, "Content-Type": content_type},
            auth_settings=["BearerToken"],
        )
        payload = encode(body) if body is not None else None
        response = api.rest_client.pool_manager.request(
            method,
            url,
            body=payload,
            headers=headers,
            timeout=self.timeout,
            retries=RETRIES,
            preload_content=True,
        )
        if not 200 <= response.status <= 299:
            raise ApiException.from_response(http_resp=response, body=None, data=None)
        try:
            answer: Mapping[str, Any] = json.loads(response.data) if response.data else {}
        except ValueError:  # e.g. a proxy's HTML page
            raise ApiException(status=response.status, reason="the answer is not JSON") from None
        return answer
