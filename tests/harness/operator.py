"""Run the real operator (`python -m jwks_operator run`, or another command such as an installed
`jwks-operator` script) as a subprocess against a kubeconfig."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType

from prometheus_client.parser import text_string_to_metric_families


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class OperatorProcess:
    """The operator as a child process; its combined output goes to `log_path`."""

    def __init__(
        self,
        kubeconfig: Path,
        log_path: Path,
        *,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        command: Sequence[str] = (sys.executable, "-m", "jwks_operator"),
        metrics: bool = False,
    ) -> None:
        self.command = list(command)
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.port = free_port()
        self.args = [
            "run",
            "--liveness",
            f"http://127.0.0.1:{self.port}/healthz",
            *args,
        ]
        self.metrics_port = free_port() if metrics else 0
        if metrics:
            self.args += ["--metrics-port", str(self.metrics_port)]
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig), **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> OperatorProcess:
        """Start and wait until the liveness endpoint answers."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*self.command, *self.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"operator exited with {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"operator did not become live in {timeout}s:\n{self.log()}")

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        code = self.process.returncode
        self.process = None
        return code

    def kill(self) -> None:
        """SIGKILL at once (a crash)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def scrape(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """The operator's /metrics as {(sample name, labels): value} (needs `metrics=True`)."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def log(self) -> str:
        """Everything the operator printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> OperatorProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@contextlib.contextmanager
def trusting_operator(
    kubeconfig: Path, workdir: Path, ca_bundle: Path, args: Sequence[str], *, metrics: bool = False
) -> Iterator[OperatorProcess]:
    """A running operator that trusts the CAs of `ca_bundle` (a test's JWKS providers), logging to
    workdir/operator.log; that path is printed once it stopped (pytest shows it with -s)."""
    log = workdir / "operator.log"
    env = {"REQUESTS_CA_BUNDLE": str(ca_bundle)}
    with OperatorProcess(kubeconfig, log, args=args, env=env, metrics=metrics) as proc:
        yield proc
    print(f"operator log: {log}")
