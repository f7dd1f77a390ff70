"""The README's quick start, run as written; and the first ten minutes' other promises (issue #15).

`test_the_quick_start_runs_as_written` reads the ```sh blocks of README.md's "## Quick start"
section (one per `###` step; this file keeps no copy of the commands) and feeds them, in order, to
one bash session, as a newcomer types them into one terminal: `set -e` stops it at the first
command that fails, and the test fails with the session's output. It substitutes only what must
differ in a test: the namespace (a fresh one), the JWKS server's port (a free one) and the scratch
folder (pytest's). Step 1 (install) is not run: this suite runs in the virtualenv it creates, put
first on PATH as `. .venv/bin/activate` does. `KUBECONFIG` names the test cluster's kubeconfig and
HOME is empty, so nothing reaches `~/.kube/config`.

The quick start runs its own `jwks-operator run`, as a newcomer does, on a cluster of its own of
the selected backend: the session's cluster already has the CRD (step 2 applies it; here that step
is needed) and, once any other test started it, the session's operator, which watches every
namespace, would reconcile the quick start's JwtSecret too: two writers, and a passing test even
if the quick start's own operator never started.

On the real tier every command is the real one (kubectl from .tools/bin). The emulated API server
cannot serve kubectl (no OpenAPI, no protobuf, no CRD endpoint), so on the emulator tier `kubectl`
is tests/harness/kubectl_standin.py, which does the same through the Python client and refuses
what it does not implement; there the CRD is served from the start (the emulator registers none
later). Everything else (key generation, the JWKS server, the operator, `jwks-operator verify`)
is real on both tiers.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import config

from tests.demo import main as demo
from tests.harness import ROOT
from tests.harness.backend import BACKEND, new_cluster
from tests.harness.client import ClusterClient
from tests.harness.k8s import load_crds
from tests.harness.operator import free_port
from tests.harness.readme import (
    README,
    Shell,
    Step,
    commands,
    newcomer_env,
    quick_start_changes,
    run_steps,
    section,
    substituted,
)
from tests.harness.readme import quick_start as steps

ANCHOR = "#why-a-local-provider-needs-two-settings"  # the one place that explains both settings
DATA_KEYS = {"jwks.json", "jwks", "policy.json"}

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("JWKS_E2E_KUBECONFIG")),
    reason="runs its own operator: needs a cluster where no other operator watches every namespace",
)


@pytest.fixture(scope="module")
def quickstart_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A cluster of the selected backend with no operator; on the real tier, without the CRD."""
    workdir = tmp_path_factory.mktemp("quickstart-cluster")
    crds = load_crds(ROOT / "crds") if BACKEND == "emulator" else []
    with new_cluster(workdir, crds) as cluster:
        yield cluster.write_kubeconfig(workdir / "kubeconfig")


@pytest.mark.timeout(600)
def test_the_quick_start_runs_as_written(quickstart_cluster: Path, tmp_path: Path) -> None:
    found = steps()
    install, *run, cleanup = found
    assert install.title.endswith("Install"), install
    assert "pip install -e ." in install.script, install
    assert cleanup.title.endswith("Clean up"), cleanup
    namespace, port, scratch = f"quickstart-{uuid.uuid4().hex[:6]}", free_port(), tmp_path / "scratch"
    env = newcomer_env(quickstart_cluster, tmp_path)
    kube = ClusterClient(config.new_client_from_config(str(quickstart_cluster)))  # type: ignore[no-untyped-call]
    changes = quick_start_changes(namespace, scratch, port)
    for old, _ in changes:
        assert any(old in step.script for step in run), (
            f"the quick start no longer says {old!r}: update the test"
        )
    shell = Shell(env, ROOT)
    try:
        for attempt in ("first run", "second run, after the clean up"):  # it can be run again
            outputs = run_steps(shell, run, changes)
            said_printed(run, outputs, changes, attempt)
            if attempt == "first run":
                published(kube, namespace, run, outputs, shell)
            said_printed([cleanup], run_steps(shell, [cleanup], changes), changes, attempt)
    except Exception:
        operator_log = scratch / "operator.log"
        if operator_log.exists():
            print(f"operator log:\n{operator_log.read_text(errors='replace')}")
        raise
    finally:
        shell.close()
        print(f"quick start session:\n{shell.output([])}")


def printed(prose: str) -> list[str]:
    """What a step says it prints when it works: the `quoted` parts of its "When it works it prints"."""
    said = re.findall(r"When it works it prints (.*?)\.(?:\s|$)", prose, re.DOTALL)
    return [part for sentence in said for part in re.findall(r"`([^`]+)`", sentence)]


def said_printed(
    found: list[Step], outputs: dict[str, str], changes: list[tuple[str, str]], attempt: str
) -> None:
    for step in found:
        for said in printed(step.prose):
            assert substituted(said, changes) in outputs.get(step.title, ""), (attempt, step.title, said)


def published(
    kube: ClusterClient, namespace: str, run: list[Step], outputs: dict[str, str], shell: Shell
) -> None:
    """What the quick start promises, read from the cluster."""
    (jwtsecret,) = [s for s in run if "kind: JwtSecret" in s.script]
    name = re.search(r"metadata: \{name: ([\w-]+)\}", jwtsecret.script)
    assert name, jwtsecret.script
    ready = kube.condition(namespace, name[1])
    assert ready, shell.output([])
    assert ready["status"] == "True", ready
    insecure = kube.condition(namespace, name[1], "InsecureConfig")  # as "Why a local provider..." says
    assert insecure, kube.get(namespace, name[1])["status"]
    assert insecure["status"] == "True", insecure
    data = kube.configmap(namespace, f"{name[1]}-jwks").data
    assert set(data) == published_keys(), sorted(data)  # what the README's table lists
    assert data["jwks"] == data["jwks.json"]
    (verify,) = [s for s in run if "jwks-operator verify" in s.script]
    assert re.search(r'^\s*"exp": \d+', outputs[verify.title], re.MULTILINE), outputs[verify.title]


def test_every_step_says_what_it_prints() -> None:
    for step in steps()[1:]:
        if step.script:
            assert printed(step.prose) or "It prints nothing" in step.prose, step.title


def test_the_quick_start_applies_the_crd_first_and_names_the_cluster() -> None:
    """Out-of-cluster instructions said neither to apply the CRD first nor which cluster is used."""
    found = steps()
    lines = [line for step in found for line in commands(step.script)]
    crd = next(
        i for i, line in enumerate(lines) if re.match(r"kubectl apply (--server-side )?-f crds/", line)
    )
    operator = next(i for i, line in enumerate(lines) if line.startswith("jwks-operator run"))
    jwtsecret = next(i for i, line in enumerate(lines) if "kubectl apply" in line and "crds/" not in line)
    assert crd < operator, lines
    assert crd < jwtsecret, lines
    prose = " ".join(step.prose for step in found)
    for says in ("$KUBECONFIG", "~/.kube/config", "current context"):
        assert says in prose, says


def units(text: str) -> list[str]:
    """Paragraphs outside code blocks, each table row and list item a unit of its own."""
    text = re.sub(r"^```.*?^```$", "", text, flags=re.MULTILINE | re.DOTALL)
    return [u for para in text.split("\n\n") for u in re.split(r"\n(?=\||- )", para) if u.strip()]


def test_a_local_provider_is_explained_in_one_place_and_linked_from_the_others() -> None:
    """`allowInsecureHttp` and `--allow-private-networks` were explained apart, in two places."""
    text = README.read_text()
    explained = section(text, "### Why a local provider needs two settings")
    assert "`spec.allowInsecureHttp: true`" in explained
    assert "`--allow-private-networks`" in explained
    elsewhere = text.replace(explained, "")
    mentions = [u for u in units(elsewhere) if "allowInsecureHttp" in u or "allow-private-networks" in u]
    assert mentions
    assert [u for u in mentions if f"]({ANCHOR})" not in u] == []


def published_keys() -> set[str]:
    """The data keys in the table of the quick start's step "Read what it published"."""
    (published,) = [s for s in steps() if "published" in s.title]
    return set(re.findall(r"^\| `([\w.]+)` \|", published.prose, re.MULTILINE))


def test_the_readme_names_every_published_data_key() -> None:
    """The README never mentioned the `jwks` key. test_the_quick_start_runs_as_written checks this
    table against the keys of the ConfigMap the quick start publishes."""
    assert published_keys() == DATA_KEYS


@pytest.mark.emulator_only  # the demo embeds its own emulator: once per `make test` is enough
@pytest.mark.timeout(120)
def test_the_demo_shows_no_command_it_did_not_run(capsys: pytest.CaptureFixture[str]) -> None:
    """`make demo` printed `$ kubectl get ...` over a table it drew itself; it runs no command."""
    assert demo() == 0
    out = capsys.readouterr().out
    assert [line for line in out.splitlines() if line.lstrip().startswith("$ ")] == []
    assert "kubectl get jwtsecrets -o wide" in out  # the table says whose columns it shows
    assert all(f"--- {key}\n" in out for key in DATA_KEYS)
