"""The node tier (`make test-node`, root): the image built from the Dockerfile, the chart's Pod on a real
node (tests/harness/node.py), in namespaces of its own (tests/harness/netns.py).

Collected only with JWKS_NODE=1 (the Makefile sets it): the emulator and real tiers never see it. When
the node cannot start, the tier fails (an error in the fixture), never skips. The host's settings are
read before and after, and the session fails if anything differs or a process or cgroup is left.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tools import node as build

from tests.harness.netns import Host, host_settings, isolate
from tests.harness.node import NODE_IP, NodeCluster, cgroup_dirs

if not os.environ.get("JWKS_NODE"):
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(scope="session")
def image() -> tuple[str, Path]:
    """The operator's image (name, OCI archive), built from the Dockerfile when the source changed."""
    return build.image()


@pytest.fixture(scope="session")
def host_before() -> dict[str, str]:
    """The host's settings before the tier changes anything."""
    return host_settings()


@pytest.fixture(scope="session")
def node(
    image: tuple[str, Path], host_before: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NodeCluster]:
    """The control plane and a node in the tier's namespaces, the operator's image imported."""
    build.binaries()
    build.pause_image()
    workdir = tmp_path_factory.mktemp("node")
    host: Host = isolate(workdir, NODE_IP)
    cluster = NodeCluster(workdir / "cluster")  # the chart installs the CRD
    try:
        with cluster:
            cluster.import_image(image[1])
            yield cluster
    finally:
        left = cluster.leftovers()
        cgroups = cgroup_dirs(cluster.cgroup)
        after = host_settings(host)
        changed = {k: (v, after.get(k)) for k, v in host_before.items() if after.get(k) != v}
        print(f"\nnode tier: host settings before {_short(host_before)}", file=sys.stderr)
        print(f"node tier: host settings after  {_short(after)}", file=sys.stderr)
        assert not left, f"processes left running: {left}"
        assert not cgroups, f"cgroups left: {cgroups}"
        assert not changed, f"host settings changed (before, after): {changed}"


def _short(settings: dict[str, str]) -> str:
    return ", ".join(
        f"{k}={v}" if not k.startswith("iptables") else f"{k}: {len(v.splitlines())} rules"
        for k, v in settings.items()
    )
