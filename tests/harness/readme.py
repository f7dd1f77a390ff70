"""The README's shell steps, read from its sections and run as a newcomer types them into one terminal.

`steps(heading)` reads the ```sh blocks of a README section, one Step per `###` subsection (this module
keeps no copy of any command); `Shell` feeds them, in order, to one bash session with `set -e`, so the
first command that fails ends it and the test fails with the session's output. The Quick start's
test (tests/e2e/test_quickstart.py) and the Install test (tests/e2e/real/test_install.py) share it.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.harness import ROOT
from tests.harness.backend import BACKEND
from tests.harness.tools import tool

README = ROOT / "README.md"
QUICK_START = "## Quick start"
# what the quick start names that a test must change: (text in the README, what the test uses)
NAMESPACE, SCRATCH, PORT = "jwks-quickstart", "/tmp/jwks-quickstart", "8000"
PATIENCE = 120.0  # seconds one step may take (kubectl wait in the README has its own timeout)


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


def steps(heading: str, text: str | None = None) -> list[Step]:
    """The `###` steps of a README section, in order (the text before the first one is left out)."""
    body = section(README.read_text() if text is None else text, heading)
    parts = re.split(r"^### (.+)\n", body, flags=re.MULTILINE)
    found = []
    for title, part in zip(parts[1::2], parts[2::2], strict=True):
        scripts = re.findall(r"^```sh\n(.*?)^```$", part, flags=re.MULTILINE | re.DOTALL)
        prose = re.sub(r"^```.*?^```$", "", part, flags=re.MULTILINE | re.DOTALL)
        found.append(Step(title, prose, "".join(scripts)))
    return found


def quick_start() -> list[Step]:
    """The quick start's `###` steps, in order: install, the steps run, clean up."""
    return steps(QUICK_START)


def quick_start_changes(namespace: str, scratch: Path, port: int) -> list[tuple[str, str]]:
    """What the quick start says, and what a test uses instead (the folder before the namespace: the
    folder's name contains it)."""
    return [
        (SCRATCH, str(scratch)),
        (NAMESPACE, namespace),
        (f"127.0.0.1:{PORT}", f"127.0.0.1:{port}"),
        (f"http.server {PORT}", f"http.server {port}"),
    ]


def run_steps(shell: Shell, found: list[Step], changes: list[tuple[str, str]]) -> dict[str, str]:
    """Run each step's script in `shell` (substituted); each step's output by its title."""
    outputs = {}
    for step in found:
        if step.script:
            outputs[step.title] = shell.run(substituted(step.script, changes), PATIENCE)
    return outputs


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
    """Where `kubectl` is: .tools/bin on the real tier (helm is there too), the stand-in on the emulator
    tier."""
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


def newcomer_env(kubeconfig: Path, tmp: Path) -> dict[str, str]:
    """A newcomer's terminal: this suite's virtualenv first on PATH (as `. .venv/bin/activate` puts it),
    then kubectl (and helm); KUBECONFIG names the test cluster and HOME is empty, so nothing reaches
    `~/.kube/config`."""
    home = tmp / "home"
    home.mkdir()
    venv = Path(sys.executable).parent
    path = f"{kubectl_dir(tmp)}{os.pathsep}{venv}{os.pathsep}{os.environ['PATH']}"
    env = {**os.environ, "PATH": path, "KUBECONFIG": str(kubeconfig), "HOME": str(home)}
    for unset in ("VIRTUAL_ENV", "BASH_ENV"):
        env.pop(unset, None)
    return env


def clone(tmp: Path) -> Path:
    """A copy of the repository's files a reader's commands use (a clone, without .git and the tests),
    so that what the README makes them create stays out of this one."""
    copy = tmp / "clone"
    for folder in ("crds", "deploy", "helm", "examples"):
        shutil.copytree(ROOT / folder, copy / folder)
    for name in ("README.md", ".gitignore"):
        shutil.copy2(ROOT / name, copy / name)
    return copy
