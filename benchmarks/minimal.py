"""The least any operator must do against the API: one list and one watch of JwtSecrets, then per
object one ConfigMap create and one status patch. Run as a subprocess by the benchmark:

    python -m benchmarks.minimal --server URL --ca CA.pem [--api-ca CA.pem --token-file F] [--concurrency 8]

It prints "watching" once its watch is open. Each JWK URL is fetched once (cached), with no
validation, retries or refreshes: the time it takes for N objects is the floor the API server sets.
"""

from __future__ import annotations

import argparse
import json
import ssl
import sys
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.rawhttp import MERGE_PATCH, JsonClient
from jwks_operator.model.names import GROUP, PLURAL, VERSION

AGENT = "jwks-minimal/1"
BASE = f"/apis/{GROUP}/{VERSION}"


class Minimal:
    """Publishes each new JwtSecret's keys and marks it Ready, with `concurrency` threads."""

    def __init__(
        self, server: str, ca_file: str, concurrency: int, api_ca: str | None = None, token: str | None = None
    ) -> None:
        self.api = JsonClient(server, AGENT, ca_file=api_ca, token=token)
        self.tls = ssl.create_default_context(cafile=ca_file)
        self.pool = ThreadPoolExecutor(concurrency)
        self._documents: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def document(self, url: str) -> dict[str, Any]:
        """The JWK Set at `url`, fetched once."""
        with self._lock:
            known = self._documents.get(url)
        if known is None:
            request = urllib.request.Request(url, headers={"User-Agent": AGENT})  # noqa: S310 - https
            with urllib.request.urlopen(request, context=self.tls, timeout=10) as response:  # noqa: S310
                known = json.loads(response.read())
            with self._lock:
                self._documents[url] = known
        return known

    def handle(self, obj: dict[str, Any]) -> None:
        """One ConfigMap create and one status patch."""
        meta, spec = obj["metadata"], obj["spec"]
        ns, name = meta["namespace"], meta["name"]
        document = self.document(spec["jwkUrl"]) if "jwkUrl" in spec else spec["static"]["jwks"]
        jwks = json.dumps(document, indent=2, sort_keys=True) + "\n"
        policy = {"issuers": spec.get("issuers", []), "audiences": spec.get("audiences", [])}
        owner = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "JwtSecret",
            "name": name,
            "uid": meta["uid"],
            "controller": True,
        }
        self.api.request(
            "POST",
            f"/api/v1/namespaces/{ns}/configmaps",
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": f"{name}-jwks",
                    "namespace": ns,
                    "labels": {"app.kubernetes.io/managed-by": "jwks-minimal"},
                    "ownerReferences": [owner],
                },
                "data": {"jwks.json": jwks, "jwks": jwks, "policy.json": json.dumps(policy, indent=2)},
            },
        )
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        status = {
            "observedGeneration": meta["generation"],
            "keyCount": len(document["keys"]),
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KeysPublished",
                    "message": f"{len(document['keys'])} key(s) published to ConfigMap {name}-jwks",
                    "lastTransitionTime": now,
                    "observedGeneration": meta["generation"],
                }
            ],
        }
        self.api.request(
            "PATCH", f"{BASE}/namespaces/{ns}/{PLURAL}/{name}/status", {"status": status}, MERGE_PATCH
        )

    def run(self) -> None:
        """List, watch, and hand every new object to the pool (until killed)."""
        listed = self.api.request("GET", f"{BASE}/{PLURAL}")
        for obj in listed["items"]:
            self.pool.submit(self._safe, obj)
        version = listed["metadata"]["resourceVersion"]
        path = f"{BASE}/{PLURAL}?watch=true&resourceVersion={version}"
        for event in self.api.stream(path, on_open=lambda: print("watching", flush=True)):
            if event["type"] == "ADDED":
                self.pool.submit(self._safe, event["object"])

    def _safe(self, obj: dict[str, Any]) -> None:
        try:
            self.handle(obj)
        except Exception as exc:
            print(f"error on {obj['metadata'].get('name')}: {exc}", file=sys.stderr, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.minimal", description=__doc__)
    parser.add_argument("--server", required=True)
    parser.add_argument("--ca", required=True, help="the JWKS providers' CA")
    parser.add_argument("--api-ca", help="the API server's CA (https)")
    parser.add_argument("--token-file", help="a bearer token for the API server")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    token = Path(args.token_file).read_text().strip() if args.token_file else None
    Minimal(args.server, args.ca, args.concurrency, args.api_ca, token).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
