"""Build (once) what the node tier needs, cached under .tools/node/: no daemon, no registry.

- kubelet and kube-scheduler, from the same `k8s.io/kubernetes` module (and version) as the control
  plane (tools/control_plane.py), into `.tools/node/<version>/`;
- the pause image: a static Go binary `FROM scratch`, as an OCI archive;
- the base image `python:3.11-slim` (the Dockerfile's `FROM`), from Debian's own packages:
  `mmdebstrap --variant=minbase` (bookworm: python3 is 3.11) imported with buildah, so the Dockerfile
  is built unchanged;
- the operator's image, `buildah bud --pull=never` on the Dockerfile, as an OCI archive
  `jwks-operator-<tag>.tar` that `ctr -n k8s.io images import` takes.

Images live in buildah's storage under `.tools/node/containers/` (never the host's /var/lib/containers).
Needs root and the Debian packages `make node-prereqs` installs.

Usage: python -m tools.node [--tag TAG]   (builds what is missing, prints what it has)
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tools.control_plane import KUBERNETES, go_build

ROOT = Path(__file__).resolve().parents[1]
NODE_ROOT = ROOT / ".tools" / "node"
BASE_IMAGE = "python:3.11-slim"
BASE_PACKAGES = ("python3", "python3-venv", "python3-pip", "ca-certificates")
PAUSE_IMAGE = "localhost/pause:node"
IMAGE = "localhost/jwks-operator"
_NODE_TOOLS = """//go:build tools

// Package tools pins the Kubernetes commands this module builds.
package tools

import (
\t_ "k8s.io/kubernetes/cmd/kube-scheduler"
\t_ "k8s.io/kubernetes/cmd/kubelet"
)
"""
_PAUSE = """// Command pause holds a Pod's namespaces: it sleeps until SIGTERM or SIGINT.
package main

import (
\t"os"
\t"os/signal"
\t"syscall"
)

func main() {
\tc := make(chan os.Signal, 1)
\tsignal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
\t<-c
}
"""


def _log(message: str) -> None:
    print(f"node: {message}", file=sys.stderr, flush=True)


def binaries(version: str = KUBERNETES) -> Path:
    """kubelet, kube-scheduler and pause in `.tools/node/<version>/` (built when missing)."""
    out = NODE_ROOT / version
    packages = {
        "kubelet": "k8s.io/kubernetes/cmd/kubelet",
        "kube-scheduler": "k8s.io/kubernetes/cmd/kube-scheduler",
        "pause": "./pause",
    }
    go_build(out, version, {"tools.go": _NODE_TOOLS, "pause/main.go": _PAUSE}, packages)
    return out


def buildah(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run buildah on the tier's own storage (.tools/node/containers), never the host's."""
    storage = NODE_ROOT / "containers"
    command = [
        "buildah",
        f"--root={storage / 'root'}",
        f"--runroot={storage / 'run'}",
        "--storage-driver=vfs",
    ]
    done = subprocess.run([*command, *args], capture_output=True, text=True, check=False)  # noqa: S603
    if check and done.returncode != 0:
        raise RuntimeError(f"node: `buildah {' '.join(args[:3])}` failed:\n{done.stderr[-3000:]}")
    return done


def _has_image(name: str) -> bool:
    return buildah("inspect", "--type=image", name, check=False).returncode == 0


def base_image() -> str:
    """The Dockerfile's base, python:3.11-slim, from Debian's packages (mmdebstrap minbase + buildah)."""
    name = f"docker.io/library/{BASE_IMAGE}"
    if _has_image(name):
        return name
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="jwks-base-") as tmp:
        rootfs = Path(tmp) / "rootfs.tar"
        subprocess.run(  # noqa: S603
            ["/usr/bin/mmdebstrap", "--variant=minbase", "--quiet", f"--include={','.join(BASE_PACKAGES)}",
             "--dpkgopt=path-exclude=/usr/share/doc/*", "--dpkgopt=path-exclude=/usr/share/man/*",
             "--dpkgopt=path-exclude=/usr/share/locale/*",
             "--aptopt=APT::Install-Recommends false", "bookworm", str(rootfs)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        container = buildah("from", "scratch").stdout.strip()
        try:
            buildah("add", container, str(rootfs), "/")
            # python:3.11-slim has `python`; Debian's python3 has only `python3`.
            buildah("run", "--isolation=chroot", container, "--", "ln", "-s", "python3", "/usr/bin/python")
            buildah("config", "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "--env", "LANG=C.UTF-8", "--cmd", "python3", container)  # fmt: skip
            buildah("commit", "--rm", container, name)
        except BaseException:
            buildah("rm", container, check=False)
            raise
    _log(f"built {name} from Debian's packages in {time.monotonic() - started:.0f} s")
    return name


def _source_digest() -> str:
    """A digest of what the image is built from (Dockerfile, pyproject.toml, README.md, operator/)."""
    digest = hashlib.sha256()
    files = [ROOT / "Dockerfile", ROOT / "pyproject.toml", ROOT / "README.md"]
    files += sorted(p for p in (ROOT / "operator").rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    for path in files:
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def image(tag: str = "") -> tuple[str, Path]:
    """The operator's image built from the Dockerfile, and its OCI archive (rebuilt when the source changes).

    pip inside the build reaches the package index with the host's CA bundle and pip configuration,
    mounted into the RUN steps only (never into a layer).
    """
    base_image()
    tag = tag or f"src-{_source_digest()}"
    name = f"{IMAGE}:{tag}"
    archive = NODE_ROOT / "images" / f"jwks-operator-{tag}.tar"
    if archive.is_file() and _has_image(name):
        return name, archive
    started = time.monotonic()
    mounts = [f"--volume={path}:{path}:ro" for path in ("/etc/pip.conf",) if Path(path).is_file()]
    ca = Path("/etc/ssl/certs/ca-certificates.crt")
    if ca.is_file():
        mounts.append(f"--volume={ca}:{ca}:ro")
    buildah("bud", "--pull=never", "--layers=false", "--isolation=chroot", "--ulimit=nofile=1024:1024",
            *mounts, "-f", str(ROOT / "Dockerfile"), "-t", name, str(ROOT))  # fmt: skip
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    buildah("push", name, f"oci-archive:{partial}:{name}")
    partial.replace(archive)
    _prune(keep=tag)
    size = archive.stat().st_size / 2**20
    _log(f"built {name} in {time.monotonic() - started:.0f} s ({size:.0f} MiB archive)")
    return name, archive


def _prune(keep: str) -> None:
    """Drop the images (and archives) built from earlier sources: each is about 500 MiB."""
    for old in (NODE_ROOT / "images").glob("jwks-operator-src-*.tar"):
        if old.name != f"jwks-operator-{keep}.tar":
            old.unlink()
    listed = buildah("images", "--format", "{{.Name}}:{{.Tag}}", check=False).stdout.split()
    for name in listed:
        if name.startswith(f"{IMAGE}:src-") and name != f"{IMAGE}:{keep}":
            buildah("rmi", name, check=False)


def pause_image() -> Path:
    """The Pod sandbox image: the static `pause` binary FROM scratch, as an OCI archive."""
    archive = NODE_ROOT / "images" / "pause.tar"
    if archive.is_file():
        return archive
    pause = binaries() / "pause"
    container = buildah("from", "scratch").stdout.strip()
    try:
        buildah("copy", container, str(pause), "/pause")
        buildah("config", "--entrypoint", '["/pause"]', "--user", "65535:65535", container)
        buildah("commit", "--rm", container, PAUSE_IMAGE)
    except BaseException:
        buildah("rm", container, check=False)
        raise
    archive.parent.mkdir(parents=True, exist_ok=True)
    buildah("push", PAUSE_IMAGE, f"oci-archive:{archive}:{PAUSE_IMAGE}")
    return archive


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", default="", help="image tag (default: src-<digest of the source>)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("node: needs root (buildah, containerd, kubelet)", file=sys.stderr)
        return 2
    try:
        out = binaries()
        name, archive = image(args.tag)
        pause = pause_image()
    except (RuntimeError, subprocess.CalledProcessError, FileNotFoundError) as exc:
        detail = getattr(exc, "stderr", "") or ""
        print(f"{exc}\n{detail[-3000:]}", file=sys.stderr)
        return 2
    print(f"{out}: kubelet, kube-scheduler, pause\n{name}: {archive}\n{PAUSE_IMAGE}: {pause}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
