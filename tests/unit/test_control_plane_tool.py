"""tools/control_plane.py: KUBEBUILDER_ASSETS is honoured binary by binary, and the wrapper module
replaces every staging module of k8s.io/kubernetes with the matching v0.MINOR.PATCH."""

from __future__ import annotations

from pathlib import Path

import pytest
from tools import control_plane


def _executable(path: Path, says: str = "") -> Path:
    path.write_text(f"#!/bin/sh\necho '{says}'\n")
    path.chmod(0o755)
    return path


def test_kubebuilder_assets_are_used_and_only_the_missing_binary_comes_from_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    envtest = tmp_path / "envtest"  # what setup-envtest ships: no kube-controller-manager
    envtest.mkdir()
    given = {
        name: _executable(envtest / name, "Kubernetes v1.34.1")
        for name in ("etcd", "kube-apiserver", "kubectl")
    }
    built = tmp_path / "built" / control_plane.KUBERNETES
    built.mkdir(parents=True)
    _executable(built / "kube-controller-manager")
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(envtest))
    monkeypatch.setattr(control_plane, "BUILD_ROOT", tmp_path / "built")
    found = control_plane.assets()
    assert found == {
        "etcd": given["etcd"],
        "kube-apiserver": given["kube-apiserver"],
        "kube-controller-manager": built / "kube-controller-manager",
    }


def test_wrapper_go_mod_replaces_each_staging_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    upstream = tmp_path / "kubernetes.mod"
    upstream.write_text(
        "module k8s.io/kubernetes\n\nrequire (\n\tk8s.io/api v0.0.0\n\tk8s.io/client-go v0.0.0\n"
        "\tk8s.io/kube-openapi v0.0.0-20250710124328-f3f2b991d03b\n\tgo.etcd.io/etcd/server/v3 v3.6.4\n)\n"
    )
    monkeypatch.setattr(control_plane, "_go", lambda args, cwd: f'{{"GoMod": "{upstream}"}}')
    text = control_plane._go_mod("v1.34.4", tmp_path)
    assert "require k8s.io/kubernetes v1.34.4" in text
    assert [line for line in text.splitlines() if line.startswith("replace")] == [
        "replace k8s.io/api => k8s.io/api v0.34.4",
        "replace k8s.io/client-go => k8s.io/client-go v0.34.4",
    ]


def test_kubebuilder_assets_of_another_minor_version_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _executable(tmp_path / "kube-apiserver", "Kubernetes v1.31.0")
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(tmp_path))
    with pytest.raises(
        RuntimeError, match=r"says 'Kubernetes v1.31.0'; KUBEBUILDER_ASSETS must hold Kubernetes v1.34.x"
    ):
        control_plane.assets()
