"""Build (once) or locate a real Kubernetes control plane: kube-apiserver, kube-controller-manager, etcd.

The binaries are built from their published Go modules through the Go module proxy, as projects that
embed Kubernetes do: a wrapper module requires `k8s.io/kubernetes` at KUBERNETES and replaces each of
its staging modules (pinned at v0.0.0 in its go.mod) with the matching v0.MINOR.PATCH; etcd is built
from `go.etcd.io/etcd/server/v3`'s `etcdmain` at the version that Kubernetes release pins. Output:
`.tools/k8s/<version>/`. Later runs reuse the binaries, and Go's module and build caches.

`KUBEBUILDER_ASSETS` (envtest's convention, e.g. from `setup-envtest use -p path`) names a directory of
existing binaries: those found there are used, and only what is missing there is built
(setup-envtest ships no kube-controller-manager).

A kube-apiserver from KUBEBUILDER_ASSETS must be of the same minor version as KUBERNETES (the tests
compare its exact messages, and it runs beside a kube-controller-manager built here).

`JWKS_K8S_VERSION=v1.37.2` picks another version for the whole run (tools and tests alike), into
`.tools/k8s/v1.37.2/`; SUPPORTED lists the oldest and newest tested (`make test-versions`).

Usage: python tools/control_plane.py [--supported]   (builds what is missing, prints each binary's
--version; --supported prints SUPPORTED)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

DEFAULT = "v1.34.4"  # the real tier's Kubernetes
# The oldest and the newest minor built here from the Go module proxy (2026-12-07): it lists
# k8s.io/kubernetes back to v1.29.6 (the CRD's CEL rules need 1.28), but serves none of the v0.29.x
# staging modules that release builds from; 1.30-1.32 were not tried. `make test-versions` runs the real
# tier's CRD, chart and end-to-end smoke tests on each.
SUPPORTED = ("v1.33.13", "v1.37.2")
KUBERNETES = os.environ.get("JWKS_K8S_VERSION") or DEFAULT  # another version for one run
ROOT = Path(__file__).resolve().parents[1]
BUILD_ROOT = ROOT / ".tools" / "k8s"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager")
_STAGING = re.compile(r"^\s*(k8s\.io/[\w.-]+) v0\.0\.0$", re.MULTILINE)
_ETCD_MAIN = """// Command etcd is etcd's own entry point (etcdmain), built from the published module.
package main

import (
\t"os"

\t"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
"""
_TOOLS = """//go:build tools

// Package tools pins the Kubernetes commands this module builds.
package tools

import (
\t_ "k8s.io/kubernetes/cmd/kube-apiserver"
\t_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
"""


def go_binary() -> str:
    """The `go` command: from PATH, else Go's default install location (/usr/local/go)."""
    default = Path("/usr/local/go/bin/go")
    found = shutil.which("go") or (str(default) if default.is_file() else None)
    if found is None:
        raise RuntimeError("control plane: no `go` (Go >= 1.24): install Go, or set KUBEBUILDER_ASSETS")
    return found


def version_ldflags(version: str) -> str:
    """Go linker flags that stamp a Kubernetes binary with its version (as the release build does)."""
    major, minor = version.removeprefix("v").split(".")[:2]
    stamp = "k8s.io/component-base/version"
    return (
        f"-s -w -X {stamp}.gitVersion={version} -X {stamp}.gitMajor={major} "
        f"-X {stamp}.gitMinor={minor} -X {stamp}.gitTreeState=clean"
    )


def _go(args: list[str], cwd: Path) -> str:
    env = {
        **os.environ,
        "CGO_ENABLED": "0",
        "GOFLAGS": f"{os.environ.get('GOFLAGS', '')} -buildvcs=false".strip(),
    }
    done = subprocess.run(  # noqa: S603
        [go_binary(), *args], cwd=cwd, env=env, check=True, capture_output=True, text=True, timeout=3600
    )
    return done.stdout


def _go_mod(version: str, work: Path) -> str:
    """The wrapper's go.mod: Kubernetes at `version`, each staging module replaced by v0.MINOR.PATCH."""
    info = json.loads(_go(["mod", "download", "-json", f"k8s.io/kubernetes@{version}"], work))
    staging = sorted(set(_STAGING.findall(Path(info["GoMod"]).read_text())))
    minor_patch = version.removeprefix("v1.")
    replaces = "".join(f"replace {m} => {m} v0.{minor_patch}\n" for m in staging)
    head = "module jwks-operator.local/control-plane\n\ngo 1.24.0\n\n"
    return f"{head}require k8s.io/kubernetes {version}\n\n{replaces}"


def build(version: str = KUBERNETES, out: Path | None = None, only: tuple[str, ...] = BINARIES) -> Path:
    """Build the binaries named in `only` into `out` (default .tools/k8s/<version>) unless present."""
    out = out or BUILD_ROOT / version
    packages = {
        "etcd": "./etcd",
        "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
        "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
    }
    files = {"etcd/main.go": _ETCD_MAIN, "tools.go": _TOOLS}
    go_build(out, version, files, {name: packages[name] for name in only})
    return out


def go_build(out: Path, version: str, files: dict[str, str], packages: dict[str, str]) -> None:
    """Build the binaries of `packages` (name -> Go package) missing from `out`, from a wrapper module in
    `out/src` (its go.mod pins Kubernetes at `version`; `files`: its other files, by relative path),
    stamped with `version`; an interrupted build leaves nothing that looks built. What it built is logged
    with the time it took."""
    missing = [name for name in packages if not (out / name).is_file()]
    if not missing:
        return
    src = out / "src"
    src.mkdir(parents=True, exist_ok=True)
    (src / "go.mod").write_text(_go_mod(version, src))
    for relative, text in files.items():
        (src / relative).parent.mkdir(parents=True, exist_ok=True)
        (src / relative).write_text(text)
    _go(["mod", "tidy"], src)
    started = time.monotonic()
    partial = out / ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    ldflags = version_ldflags(version)
    _go(
        ["build", "-trimpath", "-ldflags", ldflags, "-o", f"{partial}/", *(packages[m] for m in missing)], src
    )
    for name in missing:
        (partial / name).replace(out / name)
    partial.rmdir()
    print(f"built {', '.join(missing)} in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)


def assets(version: str = KUBERNETES) -> dict[str, Path]:
    """Path of each binary: from KUBEBUILDER_ASSETS when it has it, else built under .tools/k8s."""
    given = os.environ.get("KUBEBUILDER_ASSETS")
    found: dict[str, Path] = {}
    if given:
        found = {name: Path(given) / name for name in BINARIES if (Path(given) / name).is_file()}
        if "kube-apiserver" in found:
            _check_minor(found["kube-apiserver"], version)
    missing = tuple(name for name in BINARIES if name not in found)
    if missing:
        built = build(version, only=missing)
        found.update({name: built / name for name in missing})
    return found


def _check_minor(apiserver: Path, version: str) -> None:
    """Refuse a kube-apiserver of another minor version than `version`."""
    said = subprocess.run([str(apiserver), "--version"], capture_output=True, text=True, check=False)  # noqa: S603
    wanted = ".".join(version.split(".")[:2]) + "."
    if not said.stdout.strip().startswith(f"Kubernetes {wanted}"):
        raise RuntimeError(
            f"control plane: {apiserver} says {said.stdout.strip() or said.stderr.strip()!r}; "
            f"KUBEBUILDER_ASSETS must hold Kubernetes {wanted}x (setup-envtest use {version[1:5]}.x)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--supported", action="store_true", help="print the versions tested, and stop")
    if parser.parse_args(argv).supported:
        print(" ".join(SUPPORTED))
        return 0
    try:
        paths = assets()
    except subprocess.CalledProcessError as exc:
        print(f"control plane: `go {' '.join(exc.cmd[1:4])}` failed:\n{exc.stderr}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 2
    for path in paths.values():
        version = subprocess.run([str(path), "--version"], capture_output=True, text=True, check=False)  # noqa: S603
        print(f"{path}: {(version.stdout or version.stderr).splitlines()[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
