"""kube.http: plain JSON over the kubernetes client's pool and credentials, against a loopback HTTP/1.1
server that records each request and counts the connections it accepted."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from jwks_operator.kube.adapter import Kube
from jwks_operator.kube.http import MERGE_PATCH, ApiHttp, core_path, custom_path
from jwks_operator.model.errors import ApiCallError


class Server(ThreadingHTTPServer):
    """Answers from `answers` (path -> (status, body, headers)), 200 {"ok": true} otherwise."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.connections = 0
        self.answers: dict[str, tuple[int, bytes, dict[str, str]]] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                server.connections += 1

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                server.requests.append(
                    {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
                )
                status, payload, headers = server.answers.get(self.path, (200, b'{"ok": true}', {}))
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

            def log_message(self, *_: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def api_client(server: Server) -> client.ApiClient:
    configuration = client.Configuration(host=f"http://127.0.0.1:{server.server_address[1]}")
    configuration.api_key = {"authorization": "secret-token"}
    configuration.api_key_prefix = {"authorization": "Bearer"}
    api = client.ApiClient(configuration)
    api.user_agent = "jwks-operator/test"
    return api


def test_requests_carry_json_and_credentials_and_reuse_one_connection(server: Server) -> None:
    http = ApiHttp(api_client(server), timeout=5)
    server.answers["/api/v1/namespaces/ns/configmaps/gone"] = (404, b'{"kind": "Status"}', {})
    for _ in range(5):
        assert http.request("POST", core_path("configmaps", "ns"), {"data": {"a": "b"}}) == {"ok": True}
        http.request("PUT", core_path("configmaps", "ns", "x"), {"metadata": {"name": "x"}})
        http.request(
            "PATCH", custom_path("g", "v1", "things", "ns", "x", "status"), {}, content_type=MERGE_PATCH
        )
        http.request("GET", core_path("configmaps", "ns", "x"))
        with pytest.raises(ApiException):
            http.request("GET", core_path("configmaps", "ns", "gone"))
    assert server.connections == 1  # every answer read to its end: the connection went back to the pool
    post = server.requests[0]
    assert post["body"] == b'{"data":{"a":"b"}}'  # compact, as sent
    headers = {k.lower(): v for k, v in post["headers"].items()}
    assert headers["authorization"] == "Bearer secret-token"
    assert headers["content-type"] == "application/json"
    assert headers["accept"] == "application/json"
    assert headers["user-agent"] == "jwks-operator/test"
    patch = server.requests[2]
    assert patch["path"] == "/apis/g/v1/namespaces/ns/things/x/status"
    assert {k.lower(): v for k, v in patch["headers"].items()}["content-type"] == MERGE_PATCH


def test_names_are_escaped_into_one_path_segment() -> None:
    assert core_path("configmaps", "ns", "a/../b?c") == "/api/v1/namespaces/ns/configmaps/a%2F..%2Fb%3Fc"


def test_an_error_answer_raises_with_status_body_and_headers(server: Server) -> None:
    http = ApiHttp(api_client(server), timeout=5)
    where = core_path("configmaps", "ns", "busy")
    server.answers[where] = (429, b'{"kind": "Status", "code": 429}', {"Retry-After": "7"})
    with pytest.raises(ApiException) as caught:
        http.request("PUT", where, {})
    assert len(server.requests) == 1  # not retried here: the lanes hold every call back instead
    assert caught.value.status == 429
    assert json.loads(caught.value.body or "")["code"] == 429
    assert (caught.value.headers or {})["Retry-After"] == "7"


def test_kube_methods_turn_error_answers_into_retryable_api_call_errors(server: Server) -> None:
    kube = Kube(api_client(server), timeout=5)
    where = custom_path("jwks.dev", "v1alpha1", "jwtsecrets", "ns", "a", "status")
    server.answers[where] = (429, b"{}", {"Retry-After": "3"})
    with pytest.raises(ApiCallError, match="HTTP 429") as caught:
        kube.patch_status("ns", "a", {"keyCount": 1})
    assert caught.value.status == 429
    assert caught.value.retry_after == 3.0
    sent = server.requests[-1]
    assert json.loads(sent["body"]) == {"status": {"keyCount": 1}}
