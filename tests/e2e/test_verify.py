"""End to end: a provider signs tokens, the operator publishes its keys, `jwks-operator verify` decides."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import jwt
import trustme
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.harness.client import ClusterClient, wait_for
from tests.harness.idp import JwksProvider
from tests.material import private_pem, rsa_key

ISS = "https://idp.test"
TABLE: list[str] = []


def cli(kubeconfig: Path, ref: str, token: str, *, where: str = "--jwtsecret") -> tuple[int, str]:
    """Run the real console entry point against the cluster."""
    result = subprocess.run(
        [sys.executable, "-m", "jwks_operator", "verify", where, ref, "--token", f"Bearer {token}"],
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result.returncode, (result.stdout + result.stderr).strip()


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unsigned(kid: str, claims: dict[str, object]) -> str:
    return f"{b64(json.dumps({'alg': 'none', 'kid': kid}).encode())}.{b64(json.dumps(claims).encode())}."


def confused(kid: str, claims: dict[str, object], public_key_pem: bytes) -> str:
    head = f"{b64(json.dumps({'alg': 'HS256', 'kid': kid}).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{head}.{b64(hmac.new(public_key_pem, head.encode(), hashlib.sha256).digest())}"


def test_verification_table(kube: ClusterClient, ns: str, ca: trustme.CA, kubeconfig: Path) -> None:
    with JwksProvider(ca=ca, max_age=1) as idp:
        kube.create(ns, "api", {"jwkUrl": idp.url, "audiences": ["orders", "billing"], "issuers": [ISS]})
        kube.wait_condition(ns, "api")
        now = int(time.time())
        good = {"iss": ISS, "aud": "orders", "sub": "alice", "exp": now + 300, "iat": now}
        kid = idp.keys[0]
        public = json.loads(kube.configmap(ns, "api-jwks").data["jwks.json"])["keys"][0]
        public_pem = jwt.PyJWK(public).key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        cases: list[tuple[str, Callable[[], str], bool, str]] = [
            ("valid token", lambda: idp.sign(good), True, '"sub": "alice"'),
            ("aud as a list", lambda: idp.sign({**good, "aud": ["x", "billing"]}), True, '"sub": "alice"'),
            ("expired", lambda: idp.sign({**good, "exp": now - 120}), False, "token expired"),
            ("wrong audience", lambda: idp.sign({**good, "aud": "payroll"}), False, "audience 'payroll'"),
            (
                "wrong issuer",
                lambda: idp.sign({**good, "iss": "https://evil"}),
                False,
                "issuer 'https://evil'",
            ),
            (
                "wrong key",
                lambda: jwt.encode(good, private_pem(rsa_key(n=9)), "RS256", headers={"kid": kid}),
                False,
                "signature verification failed",
            ),
            ("alg none", lambda: unsigned(kid, good), False, "algorithm 'none' is not allowed"),
            ("HS/RS confusion", lambda: confused(kid, good, public_pem), False, "algorithm HS256"),
        ]
        for name, make, valid, expect in cases:
            code, out = cli(kubeconfig, f"{ns}/api", make())
            verdict = "valid" if code == 0 else "invalid"
            TABLE.append(f"{name:16} -> {verdict:7} {'' if valid else out.splitlines()[0]}")
            assert (code == 0) is valid, out
            assert expect in out
        new = idp.rotate()
        token = idp.sign(good, kid=new)
        wait_for(lambda: new in kube.configmap(ns, "api-jwks").data["jwks.json"], 10, "rotation published")
        code, out = cli(kubeconfig, f"{ns}/api", token)
        TABLE.append(f"{'new key, after refresh':16} -> {'valid' if code == 0 else 'invalid'}")
        assert code == 0, out
        assert cli(kubeconfig, f"{ns}/api-jwks", token, where="--configmap")[0] == 0
        missing = cli(kubeconfig, f"{ns}/missing", token, where="--configmap")
        assert missing == (
            2,
            f"jwks-operator: --configmap {ns}/missing: ConfigMap not found; "
            f"check the namespace and the name (kubectl get configmaps -n {ns})",
        )
    print("\n".join(["", "verification table:", *TABLE]))
