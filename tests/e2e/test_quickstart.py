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

import contextlib
import os
import queue
import re
import signal
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import config

from tests.demo import main as demo
from tests.harness import ROOT
from tests.harness.backend import BACKEND, new_cluster
from tests.harness.client import ClusterClient
from tests.harness.k8s import load_crds
from tests.harness.operator import free_port
from tests.harness.tools import tool

README = ROOT / "README.md"
SECTION = "## Quick start"
ANCHOR = "#why-a-local-provider-needs-two-settings"  # the one place that explains both settings
DATA_KEYS = {"jwks.json", "jwks", "policy.json"}
# what the quick start names that a test must change: (text in the README, what the test uses)
NAMESPACE, SCRATCH, PORT = "jwks-quickstart", "/tmp/jwks-quickstart", "8000"
PATIENCE = 120.0  # seconds one step may take (kubectl wait in the README has its own timeout)

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("JWKS_E2E_KUBECONFIG")),
    reason="runs its own operator: needs a cluster where no other operator watches every namespace",
)


@dataclass(frozen=True)
class Step:
    title: str  # the `###` heading
    prose: str  # the text without its code blocks
    script: str  # its ```sh blocks, joined


def section(text: str, heading: str) -> str:
    """From `heading` to the next heading of the same level."""
    level = heading.split(" ")[0]
    assert f"\n{heading}\n" in text, f"README.md has no {heading!r} section"
    start = text.index(f"\n{heading}\n") + 1
    end = text.find(f"\n{level} ", start + len(heading))
    return text[start : end if end >= 0 else len(text)]


def steps() -> list[Step]:
    """The quick start's `###` steps, in order."""
    parts = re.split(r"^### (.+)\n", section(README.read_text(), SECTION), flags=re.MULTILINE)
    found = []
    for title, body in zip(parts[1::2], parts[2::2], strict=True):
        scripts = re.findall(r"^```sh\n(.*?)^```$", body, flags=re.MULTILINE | re.DOTALL)
        prose = re.sub(r"^```.*?^```$", "", body, flags=re.MULTILINE | re.DOTALL)
        found.append(Step(title, prose, "".join(scripts)))
    return found


def commands(script: str) -> list[str]:
    """The command lines of a script (no comments, no here-document bodies)."""
    lines, heredoc = [], None
    for line in script.splitlines():
        if heredoc is not None:
            heredoc = None if line == heredoc else heredoc
            continue
        match = re.search(r"<<-?'?(\w+)'?", line)
        heredoc = match[1] if match else None
        if line.strip() and not line.lstrip().startswith("#"):
            lines.append(line.split(" #")[0].strip())
    return lines


def substitutions(namespace: str, scratch: Path, port: int) -> list[tuple[str, str]]:
    """What the README says, and what the test uses instead (the folder before the namespace: the
    folder's name contains it)."""
    return [
        (SCRATCH, str(scratch)),
        (NAMESPACE, namespace),
        (f"127.0.0.1:{PORT}", f"127.0.0.1:{port}"),
        (f"http.server {PORT}", f"http.server {port}"),
    ]


def substituted(script: str, changes: list[tuple[str, str]]) -> str:
    for old, new in changes:
        script = script.replace(old, new)
    return script


class Shell:
    """One bash session fed a script at a time, as a terminal is; `set -e`: the first failing command
    ends it. Its own process group, so that the background jobs the scripts start end with it."""

    DONE = f"__step_done_{uuid.uuid4().hex}__"

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.process = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            text=True,
            start_new_session=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.transcript: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.run("set -euo pipefail\nPS4='+ [${SECONDS}s] '\nset -x\n", 10)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def run(self, script: str, timeout: float) -> str:
        """Run `script`; its output, or AssertionError with the whole session's if a command failed."""
        assert self.process.stdin is not None
        self.process.stdin.write(f"{script}\necho {self.DONE}\n")
        self.process.stdin.flush()
        out: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"still running after {timeout}s:\n{self.output(out)}") from None
            if line is None:
                self.process.wait(10)
                raise AssertionError(
                    f"a command failed (bash exited {self.process.returncode}):\n{self.output(out)}"
                )
            if line.rstrip("\n") == self.DONE:
                self.transcript += out
                return "".join(out)
            out.append(line)

    def output(self, last: list[str]) -> str:
        return "".join(self.transcript + last)

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(10)


def kubectl_dir(tmp: Path) -> Path:
    """Where `kubectl` is: .tools/bin on the real tier, the stand-in on the emulator tier."""
    if BACKEND == "real":
        return tool("kubectl").parent
    folder = tmp / "standin"
    folder.mkdir()
    wrapper = folder / "kubectl"
    wrapper.write_text(
        f'#!/bin/sh\nPYTHONPATH="{ROOT}" exec "{sys.executable}" -m tests.harness.kubectl_standin "$@"\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return folder


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
    home = tmp_path / "home"
    home.mkdir()
    venv = Path(sys.executable).parent  # what `. .venv/bin/activate` puts first on PATH
    path = f"{kubectl_dir(tmp_path)}{os.pathsep}{venv}{os.pathsep}{os.environ['PATH']}"
    env = {**os.environ, "PATH": path, "KUBECONFIG": str(quickstart_cluster), "HOME": str(home)}
    for unset in ("VIRTUAL_ENV", "BASH_ENV"):
        env.pop(unset, None)
    kube = ClusterClient(config.new_client_from_config(str(quickstart_cluster)))  # type: ignore[no-untyped-call]
    changes = substitutions(namespace, scratch, port)
    for old, _ in changes:
        assert any(old in step.script for step in run), (
            f"the quick start no longer says {old!r}: update the test"
        )
    shell = Shell(env, ROOT)
    try:
        outputs = {}
        for step in run:
            if step.script:
                outputs[step.title] = shell.run(substituted(step.script, changes), PATIENCE)
        # what the quick start promises, read from the cluster
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
        shell.run(substituted(cleanup.script, changes), PATIENCE)
    except Exception:
        operator_log = scratch / "operator.log"
        if operator_log.exists():
            print(f"operator log:\n{operator_log.read_text(errors='replace')}")
        raise
    finally:
        shell.close()
        print(f"quick start session:\n{shell.output([])}")


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
