"""Issue 25, item 1: the image built from the Dockerfile (buildah bud, no daemon) is what it promises."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tools.node import buildah

pytestmark = pytest.mark.timeout(900)  # the image fixture may build it
BUILD_TOOLS = ("gcc", "cc", "make", "g++", "ld", "git")


@pytest.fixture(scope="module")
def rootfs(image: tuple[str, Path]) -> Iterator[Path]:
    """The image's root filesystem, mounted read-only by buildah (removed after)."""
    container = buildah("from", "--pull-never", image[0]).stdout.strip()
    try:
        yield Path(buildah("mount", container).stdout.strip())
    finally:
        buildah("rm", container, check=False)


def test_image_runs_as_65532_with_the_operator_as_entrypoint(image: tuple[str, Path]) -> None:
    config = json.loads(buildah("inspect", "--type=image", image[0]).stdout)["OCIv1"]["config"]
    assert config["User"] == "65532:65532"
    assert config["Entrypoint"] == ["jwks-operator", "run"]
    assert "/opt/jwks-operator/bin" in next(e for e in config["Env"] if e.startswith("PATH="))


def test_image_holds_only_the_wheels_install(image: tuple[str, Path], rootfs: Path) -> None:
    venv = rootfs / "opt" / "jwks-operator"
    site = next((venv / "lib").glob("python3.*/site-packages"))
    assert (site / "jwks_operator" / "__init__.py").is_file()
    assert (venv / "bin" / "jwks-operator").is_file()
    installed = [p.name for p in site.glob("jwks_operator-*.dist-info")]
    assert len(installed) == 1, installed
    # Nothing of the build stage: no source tree, no wheel, no pip cache, no build tools.
    for leftover in ("src", "wheels", "root/.cache", "tmp/pip-build-env", "opt/jwks-operator/pyproject.toml"):
        assert not (rootfs / leftover).exists(), leftover
    assert not list(rootfs.glob("root/.cache/pip")), "pip cache in the image"
    assert not list(rootfs.glob("**/jwks_operator-*.whl")), "the wheel in the image"
    for tool in BUILD_TOOLS:
        found = [f"{d}/{tool}" for d in ("usr/bin", "usr/local/bin", "bin") if (rootfs / d / tool).exists()]
        assert not found, f"build tool {tool} in the image: {found}"
    passwd = (rootfs / "etc" / "passwd").read_text()
    assert "jwks-operator:x:65532:65532:" in passwd
    unpacked = sum(p.lstat().st_size for p in rootfs.rglob("*") if p.is_file() and not p.is_symlink())
    archive = image[1].stat().st_size
    print(f"\nimage {image[0]}: {unpacked / 2**20:.0f} MiB unpacked, {archive / 2**20:.0f} MiB archive",
          file=sys.stderr)  # fmt: skip
    assert archive < unpacked  # the archive is compressed layers
