"""Fidelity of the emulator: every bad spec of tests/faults/spec_table.py is sent to the real API
server and to the emulator (tests/harness/k8s/); the verdicts and messages must be the same.

`pytest -s` prints the table: per spec, the real verdict and message, then the emulator's, and the
line `emulator agrees on N/M`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from tests.faults.spec_table import BAD_SPECS
from tests.harness import ROOT
from tests.harness.client import ClusterClient
from tests.harness.k8s import EmulatedCluster, load_crds

Verdict = tuple[str, str]  # ("accepted" | "<code> <reason>", message)


@pytest.fixture(scope="module")
def emulated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterClient]:
    with EmulatedCluster(crds=load_crds(ROOT / "crds")) as cluster:
        kube = ClusterClient(cluster.api_client(tmp_path_factory.mktemp("fidelity") / "kubeconfig"))
        kube.core.create_namespace(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "fidelity"}}
        )
        yield kube


def verdict(kube: ClusterClient, ns: str, name: str, spec: dict[str, Any]) -> Verdict:
    try:
        kube.create(ns, name, spec)
    except ApiException as exc:
        body = json.loads(str(exc.body))
        return f"{body['code']} {body['reason']}", body["message"]
    return "accepted", ""


def test_emulator_agrees_with_the_real_server(kube: ClusterClient, ns: str, emulated: ClusterClient) -> None:
    rows = []
    for index, (case, spec, _) in enumerate(BAD_SPECS):
        name = f"bad-{index}"
        rows.append((case, verdict(kube, ns, name, spec), verdict(emulated, "fidelity", name, spec)))
    agree = [case for case, real, emu in rows if real == emu]
    lines = [f"emulator agrees on {len(agree)}/{len(rows)}"]
    for case, real, emu in rows:
        mark = "=" if real == emu else "≠"
        lines.append(f"{mark} {case}\n    real:     {real[0]}: {real[1]}\n    emulator: {emu[0]}: {emu[1]}")
    report = "\n".join(lines)
    print(report)
    assert len(agree) == len(rows), report
