"""List and watch one resource over HTTP, label-selected (the I/O side of kube/listwatch.py).

Its own connection pool (a watch holds a connection for minutes: the API lanes' pool stays theirs), the
kubernetes client's TLS settings and credentials (the bearer token refreshed by the client's hook). A
watch stream is read line by line as its chunks arrive; `close()` shuts the socket of the stream being
read, from another thread, so a stop does not wait for the server's timeout.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlencode

import urllib3
from kubernetes import client
from kubernetes.client import rest

from jwks_operator.kube.http import JSON, path
from jwks_operator.model.errors import ApiCallError

__all__ = ["WatchExpiredError", "WatchHttp"]

CONNECT_TIMEOUT = 10.0
READ_MARGIN = 30.0  # seconds a watch may stay silent past its timeoutSeconds before the read gives up


class WatchExpiredError(Exception):
    """410 Gone: the resourceVersion to resume from is older than the server keeps; list again."""


class WatchHttp:
    """GET list and GET watch of one resource (`plural` of `group`/`version`, "" for core) in one namespace
    (None: all), with a label selector. Failures raise ApiCallError, a 410 WatchExpiredError."""

    def __init__(
        self,
        api_client: client.ApiClient,
        plural: str,
        *,
        namespace: str | None = None,
        selector: str = "",
        group: str = "",
        version: str = "v1",
        list_timeout: float = 60.0,
    ) -> None:
        self.api_client: Any = api_client
        self.pool = rest.RESTClientObject(api_client.configuration).pool_manager
        prefix = ("api", version) if not group else ("apis", group, version)
        scope = ("namespaces", namespace) if namespace else ()
        self.where = path(*prefix, *scope, plural)
        self.what = f"{plural} in {namespace}" if namespace else plural
        self.selector = selector
        self.list_timeout = list_timeout
        self._lock = threading.Lock()
        self._response: Any = None
        self._closed = False

    def list(self) -> tuple[list[Mapping[str, Any]], str]:
        """Every selected object and the list's resourceVersion (a watch resumes from it)."""
        response = self._get({"labelSelector": self.selector}, urllib3.Timeout(total=self.list_timeout))
        try:
            answer = json.loads(response.data)
        except ValueError:
            raise ApiCallError(f"Kubernetes API: the list of {self.what} is not JSON") from None
        items = answer.get("items") or []
        return list(items), str((answer.get("metadata") or {}).get("resourceVersion") or "")

    def watch(self, resource_version: str, timeout: int) -> Iterator[Mapping[str, Any]]:
        """The events after `resource_version` (bookmarks asked for) until the server ends the stream after
        `timeout` seconds, or `close()`. An ERROR event is yielded as it comes."""
        params = {
            "labelSelector": self.selector,
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout),
        }
        response = self._get(params, urllib3.Timeout(connect=CONNECT_TIMEOUT, read=timeout + READ_MARGIN))
        with self._lock:
            if self._closed:
                response.release_conn()
                return
            self._response = response
        done = False
        try:
            yield from _lines(response)
            done = True
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            if not self._closed:
                broke = f"Kubernetes API: watch of {self.what} broke: {type(exc).__name__}"
                raise ApiCallError(broke) from None
        except ValueError:
            raise ApiCallError(f"Kubernetes API: watch of {self.what} sent a line that is not JSON") from None
        finally:
            with self._lock:
                self._response = None
            if not done:  # unread bytes left: this connection cannot serve another request
                response.close()
            response.release_conn()

    def close(self) -> None:
        """End the stream being read (from any thread) and every later one."""
        with self._lock:
            self._closed = True
            response = self._response
        if response is not None:
            with contextlib.suppress(ValueError, RuntimeError, OSError):  # already released or closed
                response.shutdown()

    def _get(self, params: Mapping[str, str], timeout: urllib3.Timeout) -> Any:
        api = self.api_client
        method, url, headers, _, _ = api.param_serialize(
            "GET", self.where, header_params={"Accept": JSON}, auth_settings=["BearerToken"]
        )
        try:
            response = self.pool.request(
                method,
                f"{url}?{urlencode(params)}",
                headers=headers,
                timeout=timeout,
                retries=urllib3.Retry(total=2, connect=2, read=0, status=0, redirect=0),
                preload_content="watch" not in params,
            )
        except urllib3.exceptions.HTTPError as exc:
            down = f"Kubernetes API unreachable (watch {self.what}): {type(exc).__name__}"
            raise ApiCallError(down) from None
        if response.status == 410:
            if "watch" in params:
                response.close()
            response.release_conn()
            raise WatchExpiredError(f"{self.what}: resourceVersion too old")
        if not 200 <= response.status <= 299:
            status, reason = response.status, response.reason
            if "watch" in params:
                response.close()
            response.release_conn()
            raise ApiCallError(f"Kubernetes API: {status} {reason} (list/watch {self.what})")
        return response


def _lines(response: Any) -> Iterator[Mapping[str, Any]]:
    """The JSON objects of a watch stream, one a line, as its chunks arrive."""
    buffer = b""
    for chunk in response.stream(amt=None, decode_content=True):
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if line.strip():
                yield json.loads(line)
    if buffer.strip():
        yield json.loads(buffer)
