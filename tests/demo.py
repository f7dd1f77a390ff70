"""`make demo`: the operator's main job on an embedded cluster, no real cluster needed.

Starts the emulated API server, a local HTTPS JWKS provider and the operator; applies every
examples/*.yaml; prints the JwtSecrets' status in the columns of `kubectl get jwtsecrets -o wide`,
a published ConfigMap, and a token from the provider verified against the published keys.

It runs no kubectl (nor any other command): everything is read with the Python client, and the
output says so rather than showing a `$ kubectl ...` prompt (tests/e2e/test_quickstart.py checks).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import trustme
import yaml
from kubernetes import client, config

from jwks_operator.model.names import GROUP, PLURAL, VERSION
from tests.harness.idp import JwksProvider
from tests.harness.k8s import EmulatedCluster, load_crds
from tests.harness.operator import OperatorProcess

ROOT = Path(__file__).resolve().parents[1]
NS = "demo"


def apply(api: client.ApiClient, doc: dict[str, Any], provider_url: str) -> str:
    """Create one example document; the local-provider URL is pointed at the demo provider."""
    if doc["kind"] == "Secret":
        core: Any = client.CoreV1Api(api)
        core.create_namespaced_secret(NS, doc)
    else:
        if "localhost:8443" in doc["spec"].get("jwkUrl", ""):
            doc["spec"]["jwkUrl"] = provider_url
        custom: Any = client.CustomObjectsApi(api)
        custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, doc)
    return f"{doc['kind'].lower()}/{doc['metadata']['name']} created"


def age(stamp: str | None) -> str:
    if not stamp:
        return "<none>"
    seconds = int((datetime.now(UTC) - datetime.fromisoformat(stamp.replace("Z", "+00:00"))).total_seconds())
    return f"{seconds}s" if seconds < 120 else f"{seconds // 60}m"


def table(items: list[dict[str, Any]]) -> str:
    """The printer columns of the CRD, wide (like `kubectl get jwts -o wide`)."""
    rows = [["NAME", "SOURCE", "READY", "KEYS", "KEYS SINCE", "AGE", "REFRESH", "MESSAGE"]]
    for obj in items:
        status = obj.get("status") or {}
        ready: dict[str, str] = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), {})
        rows.append(
            [
                obj["metadata"]["name"],
                status.get("source", ""),
                ready.get("status", "Unknown"),
                str(status.get("keyCount", "")),
                age(status.get("lastFetchTime")),
                age(obj["metadata"].get("creationTimestamp")),
                (status.get("refresh") or {}).get("reason", "<none>"),
                ready.get("message", ""),
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "   ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "   " + r[-1] for r in rows
    )


def main() -> int:
    docs = [
        d for p in sorted((ROOT / "examples").glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d
    ]
    with tempfile.TemporaryDirectory() as tmp, EmulatedCluster(crds=load_crds(ROOT / "crds")) as cluster:
        ca = trustme.CA()
        bundle = Path(tmp) / "ca.pem"
        ca.cert_pem.write_to_path(str(bundle))
        kubeconfig = cluster.write_kubeconfig(Path(tmp) / "kubeconfig")
        api = config.new_client_from_config(str(kubeconfig))  # type: ignore[no-untyped-call]
        with JwksProvider(ca=ca, max_age=300) as provider:
            print(f"emulated API server: {cluster.url}\nlocal JWKS provider: {provider.url}\n")
            print(f"created in namespace {NS} with the Python client, from examples/*.yaml:")
            env = {"REQUESTS_CA_BUNDLE": str(bundle)}
            log = Path(tmp) / "operator.log"
            with OperatorProcess(kubeconfig, log, args=["--allow-private-networks"], env=env) as operator:
                core: Any = client.CoreV1Api(api)
                core.create_namespace({"metadata": {"name": NS}})
                for doc in docs:
                    print(apply(api, doc, provider.url))
                custom: Any = client.CustomObjectsApi(api)
                names = [d["metadata"]["name"] for d in docs if d["kind"] == "JwtSecret"]
                deadline = time.monotonic() + 30
                ready: list[dict[str, Any]] = []
                while True:
                    items = custom.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL)["items"]
                    ready = [o for o in items if _ready(o)]
                    if len(ready) == len(names) or time.monotonic() > deadline:
                        break
                    time.sleep(0.2)
                print(
                    f"\nJwtSecrets in namespace {NS}, in the columns of `kubectl get jwtsecrets -o wide`"
                    f" (drawn by the demo from the API):\n{table(items)}\n"
                )
                cm = core.read_namespaced_config_map("local-provider-jwks", NS)
                print(f"ConfigMap {NS}/local-provider-jwks, its data keys (read from the API):")
                for key, value in cm.data.items():
                    print(f"--- {key}\n{value}", end="")
                jwks, policy = json.loads(cm.data["jwks.json"]), json.loads(cm.data["policy.json"])
                token = provider.sign(
                    {
                        "aud": "demo-api",
                        "iss": "https://localhost:8443",
                        "sub": "demo-user",
                        "exp": int(time.time()) + 300,
                    }
                )
                kid = jwt.get_unverified_header(token)["kid"]
                claims = jwt.decode(
                    token,
                    jwt.PyJWKSet(jwks["keys"])[kid].key,
                    algorithms=policy["algorithms"],
                    audience=policy["audiences"],
                    issuer=policy["issuers"],
                )
                print(f"\na token signed by the provider (kid {kid}) verifies against the published keys:")
                print(json.dumps(claims, indent=2))
                ok = len(ready) == len(names)
                if not ok:
                    print(
                        f"\nnot all JwtSecrets became Ready; operator log:\n{operator.log()}", file=sys.stderr
                    )
                return 0 if ok else 1


def _ready(obj: dict[str, Any]) -> bool:
    conds = (obj.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


if __name__ == "__main__":
    sys.exit(main())
