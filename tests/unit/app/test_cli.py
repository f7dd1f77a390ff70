"""The command line in process: exit 0 valid, 1 invalid, 2 with one stderr line on what to fix."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from jwt.algorithms import RSAAlgorithm
from kubernetes.client.exceptions import ApiException
from kubernetes.config import kube_config

from jwks_operator.app import cli
from jwks_operator.app.cli_errors import CliError
from jwks_operator.app.preflight import require_crds
from jwks_operator.kube.adapter import Kube
from jwks_operator.verify.verifier import DirectoryVerifier
from tests.material import private_pem, public_jwk, rsa_key

KEY = rsa_key()


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """main() configures the root logger (and quiets urllib3's): put both back."""
    root, urllib3_logger = logging.getLogger(), logging.getLogger("urllib3")
    saved = root.handlers[:], root.level, urllib3_logger.level
    yield
    root.handlers[:], root.level = saved[0], saved[1]
    urllib3_logger.setLevel(saved[2])


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    """The single stderr line of a tool error (and no traceback)."""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


POLICY: dict[str, object] = {
    "issuers": [],
    "audiences": [],
    "algorithms": ["RS256"],
    "source": {"type": "jwks"},
}


def keys_dir(tmp_path: Path, policy: dict[str, object] | None = POLICY) -> Path:
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [public_jwk(KEY, kid="k1", alg="RS256")]}))
    if policy is not None:
        (tmp_path / "policy.json").write_text(json.dumps(policy))
    return tmp_path


def unreachable_kubeconfig(path: Path) -> str:
    """Write a kubeconfig whose API server is a closed loopback port; that server's address."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        server = f"https://127.0.0.1:{probe.getsockname()[1]}"
    cluster = {"server": server, "insecure-skip-tls-verify": True}
    context = {"cluster": "c", "user": "u"}
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": cluster}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": context}],
                "current-context": "x",
            }
        )
    )
    return server


def use_kubeconfig(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """KUBECONFIG as a fresh process would read it (the client reads it once, at import), no pod env."""
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)


@pytest.fixture
def unreachable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """KUBECONFIG names an API server on a closed loopback port; its address."""
    server = unreachable_kubeconfig(tmp_path / "kubeconfig")
    use_kubeconfig(monkeypatch, tmp_path / "kubeconfig")
    return server


@contextlib.contextmanager
def listening() -> Iterator[int]:
    """A loopback port something listens on."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        yield int(busy.getsockname()[1])


@pytest.fixture
def busy_port() -> Iterator[int]:
    with listening() as port:
        yield port


def test_exit_status_0_valid_1_invalid_2_cannot_decide(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = str(keys_dir(tmp_path))
    claims = {"sub": "alice", "exp": int(time.time()) + 300}  # now, not at collection: the suite is long
    token = jwt.encode(claims, private_pem(KEY), "RS256", headers={"kid": "k1"})
    code, out, _ = run(capsys, "verify", "--dir", folder, "--token", f"Bearer {token}")
    assert (code, json.loads(out)["sub"]) == (0, "alice")
    expired = jwt.encode({**claims, "exp": 1}, private_pem(KEY), "RS256", headers={"kid": "k1"})
    code, out, _ = run(capsys, "verify", "--dir", folder, "--token", expired)
    assert (code, out.strip()) == (1, "invalid: token expired (exp is in the past)")
    (tmp_path / "jwks.json").unlink()
    code, out, err = run(capsys, "verify", "--dir", folder, "--token", token)
    assert (code, out) == (2, "")
    assert one_line(err).startswith(f"jwks-operator: --dir {folder}: no jwks.json in the published data;")


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            None,
            "--dir {dir}: no such directory; give the folder where the published ConfigMap or Secret is",
        ),
        ({}, "--dir {dir}: no jwks.json in the published data; give the folder where the published"),
        ({"jwks.json": '{"keys": ['}, "--dir {dir}: jwks.json is not valid JSON (line 1 column 11); give"),
        ({"jwks.json": "[]"}, "--dir {dir}: jwks.json is not a JSON object; give"),
        (
            {"jwks.json": '{"keys": [1]}'},
            "--dir {dir}: jwks.json is not a JWK Set: keys must be a list of objects",
        ),
        ({"jwks.json": '{"keys": []}', "policy.json": "{"}, "--dir {dir}: policy.json is not valid JSON"),
        (
            {"jwks.json": '{"keys": []}', "policy.json": json.dumps({**POLICY, "audiences": "proj"})},
            "--dir {dir}: policy.json is not a policy: audiences must be a list of non-empty strings, not a "
            "string; give",
        ),
        (
            {"jwks.json": '{"keys": []}', "policy.json": json.dumps({**POLICY, "source": "jwkUrl"})},
            "--dir {dir}: policy.json is not a policy: source must be an object with a type, not a string",
        ),
        (
            {"jwks.json": '{"keys": [{"kty": "oct", "kid": 7}]}', "policy.json": json.dumps(POLICY)},
            "--dir {dir}: jwks.json is not a JWK Set: keys[0].kid must be a string, not a number",
        ),
    ],
)
def test_verify_dir_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], files: dict[str, str] | None, expected: str
) -> None:
    folder = tmp_path / "mounted"
    if files is not None:
        folder.mkdir()
        for name, text in files.items():
            (folder / name).write_text(text)
    code, out, err = run(capsys, "verify", "--dir", str(folder), "--token", "x.y.z")
    assert (code, out) == (2, "")
    assert one_line(err).startswith("jwks-operator: " + expected.format(dir=folder))


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["run", "--min-interval", "abc"], "--min-interval abc: not a number of seconds; give one like 60"),
        (["run", "--min-interval", "-4"], "--min-interval -4: must be more than 0 seconds; give one like 60"),
        (["run", "--resync-interval", "nan"], "--resync-interval nan: must be 0 or more seconds; give one"),
        (["run", "--metrics-port", "99999"], "--metrics-port 99999: must be 0 to 65535; give a port number"),
        (
            ["run", "--concurrency", "0"],
            "--concurrency 0: must be 1 or more; give a whole number of 1 or more",
        ),
        (["run", "--priority", "high"], "--priority high: not a whole number; give a whole number"),
        (
            ["run", "--liveness", "ftp://x"],
            "--liveness ftp://x: not an http://HOST:PORT/PATH URL; give one like",
        ),
        (["run", "--peering", "Bad_Name"], "--peering Bad_Name: not a valid object name; use lower-case"),
        (
            ["run", "--log-format", "xml"],
            "--log-format: invalid choice: 'xml' (choose from 'text', 'json'); see",
        ),
        (["run", "--min-interval"], "--min-interval: expected one argument; see 'jwks-operator run --help'"),
        (["run", "--bogus"], "unrecognized arguments: --bogus; see 'jwks-operator --help'"),
        (["frobnicate"], "command: invalid choice: 'frobnicate' (choose from 'run', 'verify'); see"),
        (["verify", "--dir", "d"], "verify: the following arguments are required: --token; see"),
        (
            ["verify", "--token", "t", "--configmap", "nope"],
            "--configmap nope: not NS/NAME; give the namespace",
        ),
        (["verify", "--token", "t", "--leeway", "-1"], "--leeway -1: must be 0 or more seconds"),
        (
            ["run", "--max-interval", "30"],
            "--max-interval 30: below --min-interval 60; raise --max-interval or",
        ),
        (["run", "--retry-base", "9", "--retry-max", "3"], "--retry-max 3: below --retry-base 9; raise"),
    ],
)
def test_bad_flag_values(capsys: pytest.CaptureFixture[str], argv: list[str], expected: str) -> None:
    code, out, err = run(capsys, *argv)
    assert (code, out) == (2, "")
    assert one_line(err).startswith("jwks-operator: " + expected)


@pytest.mark.parametrize("argv", [["run"], ["verify", "--token", "t", "--jwtsecret", "ns/api"]])
def test_no_kubeconfig_and_not_in_a_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    use_kubeconfig(monkeypatch, tmp_path / "missing")
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert one_line(err) == (
        f"jwks-operator: KUBECONFIG={tmp_path / 'missing'}: no such file, and not in a cluster; "
        "point KUBECONFIG at a kubeconfig file, or run in a pod with a ServiceAccount"
    )


def test_broken_kubeconfig(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "kubeconfig").write_text("apiVersion: v1\nkind: Config\n")
    use_kubeconfig(monkeypatch, tmp_path / "kubeconfig")
    code, _, err = run(capsys, "verify", "--token", "t", "--configmap", "ns/api")
    assert code == 2
    assert one_line(err).startswith(
        f"jwks-operator: KUBECONFIG={tmp_path / 'kubeconfig'}: not a usable kubeconfig:"
    )


@pytest.mark.parametrize("flag", ["--jwtsecret", "--configmap"])
def test_verify_against_an_unreachable_api(
    unreachable: str, capsys: pytest.CaptureFixture[str], flag: str
) -> None:
    code, _, err = run(capsys, "verify", "--token", "t", flag, "ns/api")
    assert code == 2
    assert one_line(err) == (
        f"jwks-operator: {flag} ns/api: cannot reach the Kubernetes API at {unreachable} "
        "(connection refused); check that the cluster is up and that the kubeconfig names its address"
    )


def _with_body(body: object, status: int = 404, reason: str = "Not Found") -> ApiException:
    exc = ApiException(status=status, reason=reason)
    exc.body = body if isinstance(body, str) else json.dumps(body)
    return exc


@pytest.mark.parametrize(
    ("flag", "raised", "expected"),
    [
        (
            "--jwtsecret",
            _with_body({"kind": "Status", "reason": "NotFound", "details": {"name": "api"}}),
            "--jwtsecret ns/api: JwtSecret not found; check the namespace and the name "
            "(kubectl get jwtsecrets -n ns)",
        ),
        (
            "--jwtsecret",
            _with_body("404 page not found"),
            "--jwtsecret ns/api: {server} serves no JwtSecret API;",
        ),
        (
            "--jwtsecret",
            _with_body({"kind": "Status", "message": 'User "x" cannot get jwtsecrets'}, 403, "Forbidden"),
            '--jwtsecret ns/api: forbidden (HTTP 403 Forbidden: User "x" cannot get jwtsecrets); ask for',
        ),
        (
            "--jwtsecret",
            LookupError("JwtSecret ns/api has published nothing yet"),
            "--jwtsecret ns/api: JwtSecret ns/api has published nothing yet; "
            "see kubectl describe jwtsecret -n ns api",
        ),
        (
            "--configmap",
            LookupError("ConfigMap ns/api not found"),
            "--configmap ns/api: ConfigMap not found; check the namespace and the name "
            "(kubectl get configmaps -n ns)",
        ),
    ],
)
def test_verify_missing_or_forbidden_object(
    unreachable: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    flag: str,
    raised: Exception,
    expected: str,
) -> None:
    def read_published(*_: object, **__: object) -> dict[str, str]:
        raise raised

    monkeypatch.setattr(Kube, "read_published", read_published)
    code, _, err = run(capsys, "verify", "--token", "t", flag, "ns/api")
    assert code == 2
    assert one_line(err).startswith("jwks-operator: " + expected.format(server=unreachable))


def test_verify_unusable_published_data(
    unreachable: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(Kube, "read_published", lambda *_, **__: {"jwks.json": "{"})
    code, _, err = run(capsys, "verify", "--token", "t", "--configmap", "ns/api")
    assert code == 2
    assert one_line(err).startswith("jwks-operator: --configmap ns/api: unusable published data: jwks.json")


@pytest.mark.timeout(30)
def test_run_metrics_port_in_use(
    unreachable: str, busy_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "run", "--metrics-port", str(busy_port))
    assert code == 2
    assert (
        one_line(err)
        == f"jwks-operator: --metrics-port {busy_port}: address already in use; pick another port"
    )


@pytest.mark.timeout(30)
def test_run_liveness_port_in_use(
    unreachable: str, busy_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{busy_port}/healthz"
    code, _, err = run(capsys, "run", "--liveness", url)
    assert code == 2
    assert one_line(err) == f"jwks-operator: --liveness {url}: address already in use; pick another port"


QUOTED = "k" * 40  # as if an exception quoted a secret


def test_internal_error_exits_2_with_a_summary_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*_: object, **__: object) -> None:
        raise RuntimeError(QUOTED)

    monkeypatch.setattr(DirectoryVerifier, "verify", broken)
    code, _, err = run(capsys, "verify", "--dir", str(keys_dir(tmp_path)), "--token", "t")
    assert code == 2
    assert err.splitlines()[-1] == (
        "jwks-operator: internal error: RuntimeError; please report it with the traceback above"
    )
    assert "Traceback" in err
    assert QUOTED not in err  # a message may quote key material: withheld, as in the logs


def flat(text: str) -> str:
    return " ".join(text.split())


def test_help_shows_every_default_and_the_clamps(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "run", "--help")
    assert code == 0
    options = re.findall(r"^  (-\S+)", out, re.MULTILINE)
    assert len(options) == 22  # -h, and 21 flags that each say their default
    assert flat(out).count("(default") == len(options) - 1
    for default in ("--min-interval MIN_INTERVAL", "(default: 60)", "(default: 86400)", "(default: 0)"):
        assert default in out
    assert (
        "max-age or Expires below it is held to it (max-age=4 with the default: refreshed every 60 s)"
        in flat(out)
    )
    assert "held between --min-interval and --max-interval" in flat(out)


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["verify", "--help"]])
def test_help_documents_the_exit_statuses(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, out, _ = run(capsys, *argv)
    assert code == 0
    assert "exit status:" in out
    for line in (
        "0  verify: the token is valid",
        "1  verify: the token is invalid",
        "2  the command could not",
    ):
        assert line in out


def test_verify_a_mount_without_policy_only_when_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without policy.json no audience or issuer is checked: exit 2 unless --no-policy says so."""
    folder = str(keys_dir(tmp_path, policy=None))
    claims = {"sub": "alice", "aud": "anyone", "exp": int(time.time()) + 300}
    token = jwt.encode(claims, private_pem(KEY), "RS256", headers={"kid": "k1"})
    code, out, err = run(capsys, "verify", "--dir", folder, "--token", token)
    assert (code, out) == (2, "")
    assert one_line(err) == (
        f"jwks-operator: --dir {folder}: no policy.json in the published data, so no audience or issuer "
        "would be checked; mount the whole ConfigMap or Secret (not only its jwks.json), or pass "
        "--no-policy to check signatures and times only"
    )
    code, out, _ = run(capsys, "verify", "--dir", folder, "--token", token, "--no-policy")
    assert (code, json.loads(out)["aud"]) == (0, "anyone")
    code, out, _ = run(capsys, "verify", "--dir", folder, "--no-policy", "--token", f"x{token}")
    assert (code, out.split(":")[0]) == (1, "invalid")
    keys_dir(tmp_path, policy={**POLICY, "audiences": ["api"]})  # a policy that is there still applies
    code, out, _ = run(capsys, "verify", "--dir", folder, "--token", token, "--no-policy")
    assert (code, out.strip()) == (1, "invalid: audience 'anyone' is not one of ['api']")


def test_verify_published_data_without_policy(
    unreachable: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    jwks = json.dumps({"keys": [public_jwk(KEY, kid="k1", alg="RS256")]})
    monkeypatch.setattr(Kube, "read_published", lambda *_, **__: {"jwks.json": jwks})
    token = jwt.encode({"sub": "alice"}, private_pem(KEY), "RS256", headers={"kid": "k1"})
    code, _, err = run(capsys, "verify", "--token", token, "--configmap", "ns/api")
    assert code == 2
    assert one_line(err) == (
        "jwks-operator: --configmap ns/api: unusable published data: no policy.json in the published data, "
        "so no audience or issuer would be checked; see the JwtSecret's status (the operator publishes "
        "policy.json), or pass --no-policy to check signatures and times only"
    )
    code, out, _ = run(capsys, "verify", "--token", token, "--configmap", "ns/api", "--no-policy")
    assert (code, json.loads(out)["sub"]) == (0, "alice")


def signed(header: dict[str, object], payload: str) -> str:
    """RS256 with KEY over a header and a payload written by hand."""

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    signing_input = f"{b64(json.dumps(header).encode())}.{b64(payload.encode())}"
    signature = RSAAlgorithm(RSAAlgorithm.SHA256).sign(signing_input.encode(), KEY)
    return f"{signing_input}.{b64(signature)}"


@pytest.mark.parametrize(
    ("header", "payload", "reason"),
    [
        ({"kid": "k1", "crit": ["x"], "x": 1}, "{}", "crit header: extension 'x' is not understood"),
        ({"kid": "k1", "crit": "x"}, "{}", "crit header must be a list of extension names"),
        ({"kid": 5}, "{}", "kid header must be a string, not a number"),
        ({"kid": "k1"}, '{"exp": NaN}', "exp claim must be a finite number, not NaN"),
        ({"kid": "k1"}, '{"nbf": -Infinity}', "nbf claim must be a finite number, not -Infinity"),
        ({"kid": "k1"}, '{"iat": NaN}', "iat claim must be a finite number, not NaN"),
        ({"kid": "k1"}, '{"aud": [1]}', "aud claim must be a string or a list of strings"),
    ],
)
def test_tokens_that_once_raised_or_passed_are_invalid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], header: dict[str, object], payload: str, reason: str
) -> None:
    """Exit status 1 and the reason, never a traceback (crit and a numeric kid raised; NaN passed)."""
    token = signed({"alg": "RS256", **header}, payload)
    code, out, err = run(capsys, "verify", "--dir", str(keys_dir(tmp_path)), "--token", token)
    assert (code, err) == (1, "")
    assert out.startswith(f"invalid: {reason}"), out


class Discovery:
    """GET /apis/GROUP/VERSION as an API server answers it: the resources served, or 404."""

    def __init__(self, served: dict[str, list[str]]) -> None:
        self.served = served  # "group/version" -> plurals
        self.asked: list[str] = []

    def request(self, method: str, where: str, body: object = None, **_: object) -> dict[str, object]:
        self.asked.append(where)
        group_version = where.removeprefix("/apis/")
        if group_version not in self.served:
            raise ApiException(status=404, reason="Not Found")
        return {"resources": [{"name": p} for p in self.served[group_version]] + ["junk"]}


@pytest.mark.parametrize(
    ("served", "peering", "clusterwide", "missing"),
    [
        ({}, None, True, "jwtsecrets.jwks.dev"),
        ({"jwks.dev/v1alpha1": ["other"]}, None, True, "jwtsecrets.jwks.dev"),
        ({"jwks.dev/v1alpha1": ["jwtsecrets"]}, None, True, None),
        ({"jwks.dev/v1alpha1": ["jwtsecrets"]}, "p", True, "clusterkopfpeerings.kopf.dev"),
        (
            {"jwks.dev/v1alpha1": ["jwtsecrets"], "kopf.dev/v1": ["clusterkopfpeerings"]},
            "p",
            False,
            "kopfpeerings.kopf.dev",
        ),
        ({"jwks.dev/v1alpha1": ["jwtsecrets"], "kopf.dev/v1": ["kopfpeerings"]}, "p", False, None),
    ],
)
def test_run_requires_the_crds_it_watches(
    served: dict[str, list[str]], peering: str | None, clusterwide: bool, missing: str | None
) -> None:
    discovery = Discovery(served)
    if missing is None:
        require_crds(discovery, "https://k8s", peering, clusterwide)  # type: ignore[arg-type]
        return
    with pytest.raises(CliError) as info:
        require_crds(discovery, "https://k8s", peering, clusterwide)  # type: ignore[arg-type]
    install = "crds/" if missing.endswith("jwks.dev") else "helm/jwks-operator/crds/ (Kopf's peering CRDs)"
    assert str(info.value) == (
        f"CRD {missing}: not installed in the cluster at https://k8s; "
        f"install it first: kubectl apply --server-side -f {install}"
    )


def test_run_reports_a_refused_discovery_as_one_line() -> None:
    class Refusing(Discovery):
        def request(self, method: str, where: str, body: object = None, **_: object) -> dict[str, object]:
            raise _with_body({"message": "nope"}, 403, "Forbidden")

    with pytest.raises(CliError, match=r"^CRD jwtsecrets\.jwks\.dev: forbidden \(HTTP 403 Forbidden: nope\)"):
        require_crds(Refusing({}), "https://k8s", None, True)  # type: ignore[arg-type]


def two_contexts(path: Path) -> tuple[str, str]:
    """A kubeconfig with contexts `near` (current) and `far`, each an API server on a closed port."""
    near, far = (
        unreachable_kubeconfig(path.with_suffix(".near")),
        unreachable_kubeconfig(path.with_suffix(".far")),
    )
    clusters = [
        {"name": n, "cluster": {"server": s, "insecure-skip-tls-verify": True}}
        for n, s in (("near", near), ("far", far))
    ]
    contexts = [{"name": n, "context": {"cluster": n, "user": "u"}} for n in ("near", "far")]
    body = {"apiVersion": "v1", "kind": "Config", "clusters": clusters, "contexts": contexts,
            "users": [{"name": "u", "user": {"token": "t"}}], "current-context": "near"}  # fmt: skip
    path.write_text(json.dumps(body))
    return near, far


@pytest.mark.parametrize("command", [["run"], ["verify", "--token", "t", "--jwtsecret", "ns/api"]])
def test_kubeconfig_and_context_flags_pick_the_cluster_as_kubectl_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    use_kubeconfig(monkeypatch, tmp_path / "missing")  # $KUBECONFIG would fail: the flag is what counts
    near, far = two_contexts(tmp_path / "kubeconfig")
    subject = "CRD jwtsecrets.jwks.dev" if command == ["run"] else "--jwtsecret ns/api"
    for flags, server in ([], near), (["--context", "far"], far):
        code, _, err = run(capsys, *command, "--kubeconfig", str(tmp_path / "kubeconfig"), *flags)
        assert code == 2
        assert one_line(err).startswith(
            f"jwks-operator: {subject}: cannot reach the Kubernetes API at {server} "
        )
    code, _, err = run(capsys, *command, "--kubeconfig", str(tmp_path / "kubeconfig"), "--context", "nope")
    assert code == 2
    assert one_line(err) == (
        f"jwks-operator: --context nope: no such context in {tmp_path / 'kubeconfig'} (it has near, far); "
        "pick one of them"
    )
    code, _, err = run(capsys, *command, "--kubeconfig", str(tmp_path / "absent"))
    assert code == 2
    assert (
        one_line(err)
        == f"jwks-operator: --kubeconfig {tmp_path / 'absent'}: no such file; give a kubeconfig file"
    )
