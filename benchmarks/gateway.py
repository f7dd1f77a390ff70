"""`python -m benchmarks.gateway`: how long a provider's key rotation takes to reach the gateway.

The Envoy tier's setup (tests/harness/twogateways.py) on the emulator: the operator (`--min-interval 1`,
the provider's `max-age=1`), a JwtSecret with the `istio` and `envoyGateway` outputs, and one real Envoy
per gateway, each fed by its control plane's translation (istiod's code; Envoy Gateway's rules followed in
Python). Each rotation adds a key at the provider and retires the old one, then measures, from that
moment: the operator's write of the new key (the ConfigMap and the RequestAuthentication both list it),
and each gateway's acceptance of a token of the new key (its control plane re-reads the cluster every
0.1 s, where istiod and Envoy Gateway are told by a watch, and pushes a changed listener). Writes the
"Measured" block of docs/data-plane.md's rotation section; `--quick`: one rotation, writes nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import trustme
from tests.harness.client import ClusterClient
from tests.harness.gomod import gateway_crds
from tests.harness.idp import JwksProvider
from tests.harness.k8s import EmulatedCluster, load_crds
from tests.harness.operator import trusting_operator
from tests.harness.planes import ISTIO
from tests.harness.twogateways import AUDIENCE, ISSUER, Gateways, gateways, outputs, platform, published

from benchmarks.backends import ROOT

DOC = ROOT / "docs" / "data-plane.md"
BEGIN = "<!-- bench:gateway -->"
END = "<!-- /bench:gateway -->"
POLL = 0.1  # how often the harness's control planes re-read the cluster
OPERATOR_ARGS = ["--min-interval", "1", "--allow-private-networks"]
COLUMNS = (
    "gateway",
    "rotations",
    "operator wrote p50 s",
    "operator wrote max s",
    "gateway accepts p50 s",
    "gateway accepts max s",
)


def claims() -> dict[str, object]:
    now = int(time.time())
    return {"iss": ISSUER, "aud": AUDIENCE, "sub": "bench", "iat": now, "exp": now + 300}


def has_kid(kube: ClusterClient, ns: str, kid: str) -> bool:
    """Whether the operator's writes list the kid: the ConfigMap and the RequestAuthentication."""
    jwks = json.loads(kube.configmap(ns, "shop-jwks").data["jwks"])
    rules = kube.custom.get_namespaced_custom_object(*ISTIO, ns, "requestauthentications", "shop")
    inline = [k for r in rules["spec"]["jwtRules"] for k in json.loads(r["jwks"])["keys"]]
    return all(any(k.get("kid") == kid for k in keys) for keys in (jwks["keys"], inline))


def rotate(kube: ClusterClient, ns: str, idp: JwksProvider, gws: Gateways) -> dict[str, float]:
    """One rotation: seconds from it to the operator's write, and to each gateway's acceptance."""
    old = idp.keys[-1]
    new = idp.rotate()
    idp.retire(old)
    started = time.monotonic()
    token = idp.sign(claims(), kid=new)
    times: dict[str, float] = {}
    deadline = started + 60
    while len(times) < 3 and time.monotonic() < deadline:
        if "operator" not in times and has_kid(kube, ns, new):
            times["operator"] = time.monotonic() - started
        for name, pusher in gws:
            if name not in times:
                pusher.sync()
                if pusher.envoy.request(token).status == 200:
                    times[name] = time.monotonic() - started
        time.sleep(POLL)
    if len(times) < 3:
        raise RuntimeError(f"the rotation did not reach every gateway in 60 s: {times}")
    return times


def run(rotations: int, workdir: Path, progress: bool = True) -> list[dict[str, float]]:
    ca = trustme.CA()
    bundle = workdir / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    crds = [*load_crds(ROOT / "crds"), *gateway_crds()]
    with EmulatedCluster(crds=crds) as cluster:
        kubeconfig = cluster.write_kubeconfig(workdir / "kubeconfig")
        kube = ClusterClient.from_kubeconfig(kubeconfig)
        with (
            trusting_operator(kubeconfig, workdir, bundle, OPERATOR_ARGS),
            JwksProvider(ca=ca, max_age=1) as idp,
            kube.namespace("bench") as ns,
        ):
            platform(kube, ns)
            kube.create(
                ns,
                "shop",
                {"jwkUrl": idp.url, "issuers": [ISSUER], "audiences": [AUDIENCE], "outputs": outputs()},
            )
            published(kube, ns, "shop")
            with gateways(kube, ns, workdir / "envoy") as gws:
                found = []
                for index in range(rotations):
                    found.append(rotate(kube, ns, idp, gws))
                    if progress:
                        print(f"rotation {index + 1}/{rotations}: {found[-1]}", file=sys.stderr, flush=True)
                return found


def table(found: Sequence[dict[str, float]]) -> list[str]:
    lines = ["| " + " | ".join(COLUMNS) + " |", "| " + " | ".join("---" for _ in COLUMNS) + " |"]
    operator = [t["operator"] for t in found]
    for gateway in ("istio", "envoy-gateway"):
        accepted = [t[gateway] for t in found]
        cells = [
            gateway,
            str(len(found)),
            f"{statistics.median(operator):.1f}",
            f"{max(operator):.1f}",
            f"{statistics.median(accepted):.1f}",
            f"{max(accepted):.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gateway", description=__doc__)
    parser.add_argument("--rotations", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="one rotation, write nothing")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as folder:
        found = run(1 if args.quick else args.rotations, Path(folder))
    lines = table(found)
    print("\n".join(lines), flush=True)
    if not (args.quick or args.no_write):
        text = DOC.read_text()
        stamp = f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores shared with the harness:"
        block = "\n".join([BEGIN, stamp, "", *lines, END])
        DOC.write_text(text[: text.index(BEGIN)] + block + text[text.index(END) + len(END) :])
        print(f"wrote {DOC}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
