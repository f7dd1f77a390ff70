"""A stand-in for `kubectl` on the emulator tier, for the README's quick start
(tests/e2e/test_quickstart.py).

The emulated API server does not speak enough of kubectl's protocol (no OpenAPI documents for
client-side validation, no protobuf, no CustomResourceDefinition endpoint, partial discovery), so on
that tier the quick start's kubectl commands run here instead, through the Python client. Only the
verbs and flags the quick start uses are accepted; anything else exits 2 naming what is missing, so
that a new kubectl command in the README is noticed rather than skipped. The real tier runs the
real kubectl.

    python -m tests.harness.kubectl_standin ARGS...   (with KUBECONFIG set, as kubectl reads it)
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from jwks_operator.model.names import GROUP, PLURAL, VERSION

CRD_NAME = f"{PLURAL}.{GROUP}"
KINDS = {  # the names kubectl accepts for each resource the quick start uses
    "JwtSecret": {"jwts", "jwtsecret", "jwtsecrets", CRD_NAME},
    "ConfigMap": {"cm", "configmap", "configmaps"},
    "Namespace": {"ns", "namespace", "namespaces"},
    "CustomResourceDefinition": {"crd", "crds", "customresourcedefinition", "customresourcedefinitions"},
}


class Unsupported(Exception):
    """A command or flag the stand-in does not implement (exit status 2)."""


@dataclass
class Args:
    verb: list[str] = field(default_factory=list)  # the positional words
    namespace: str = "default"
    filename: str | None = None
    output: str | None = None
    wait_for: str | None = None
    timeout: float = 30.0


VALUED = {"-n": "namespace", "--namespace": "namespace", "-f": "filename", "--filename": "filename",
          "-o": "output", "--output": "output", "--for": "wait_for", "--timeout": "timeout"}  # fmt: skip


def parse(argv: Sequence[str]) -> Args:
    """kubectl's `--flag value` and `--flag=value` forms, for the flags the quick start uses."""
    args, words = Args(), list(argv)
    while words:
        word = words.pop(0)
        flag, equals, inline = word.partition("=")
        if flag in VALUED:
            if not equals and not words:
                raise Unsupported(f"{flag} without a value")
            value = inline if equals else words.pop(0)
            if VALUED[flag] == "timeout":
                args.timeout = float(value.removesuffix("s"))
            else:
                setattr(args, VALUED[flag], value)
        elif word == "--server-side":
            pass  # the stand-in creates or updates; field ownership is the real server's business
        elif word.startswith("-"):
            raise Unsupported(f"flag {word}")
        else:
            args.verb.append(word)
    return args


def kind_of(word: str) -> tuple[str, str | None]:
    """(Kind, name) from `jwts`, `jwts/NAME` or `configmap`; Unsupported for other resources."""
    resource, _, name = word.partition("/")
    for kind, names in KINDS.items():
        if resource.lower() in names:
            return kind, name or None
    raise Unsupported(f"resource {resource!r}")


class Kubectl:
    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.core: Any = client.CoreV1Api(api)
        self.custom: Any = client.CustomObjectsApi(api)

    def served(self, crd: dict[str, Any]) -> bool:
        """Whether the emulator serves a CRD's resource (it serves the CRDs it was started with)."""
        spec = crd["spec"]
        for version in spec["versions"]:
            try:
                found = self.custom.get_api_resources(spec["group"], version["name"])
            except ApiException as exc:
                if exc.status != 404:
                    raise
                return False
            if spec["names"]["plural"] not in {r.name for r in found.resources}:
                return False
        return True

    def read(self, kind: str, ns: str, name: str) -> dict[str, Any]:
        if kind == "JwtSecret":
            obj: dict[str, Any] = self.custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)
            return obj
        if kind == "ConfigMap":
            return plain(self.api, self.core.read_namespaced_config_map(name, ns))
        raise Unsupported(f"reading a {kind}")

    def listed(self, kind: str, ns: str) -> list[dict[str, Any]]:
        if kind == "JwtSecret":
            items: list[dict[str, Any]] = self.custom.list_namespaced_custom_object(
                GROUP, VERSION, ns, PLURAL
            )["items"]
            return items
        raise Unsupported(f"listing {kind}s")

    def apply(self, doc: dict[str, Any], ns: str) -> str:
        kind, name = doc.get("kind", ""), doc["metadata"]["name"]
        if kind == "CustomResourceDefinition":
            if not self.served(doc):
                raise RuntimeError(
                    f"the emulator does not serve {name}: it serves the CRDs it was started with"
                )
            return f"customresourcedefinition.apiextensions.k8s.io/{name} serverside-applied"
        if kind == "Namespace":
            self.create_namespace(name)
            return f"namespace/{name} serverside-applied"
        if kind != "JwtSecret":
            raise Unsupported(f"applying a {kind}")
        ns = doc["metadata"].get("namespace", ns)
        try:
            self.custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, doc)
        except ApiException as exc:
            if exc.status != 409:
                raise
            self.custom.patch_namespaced_custom_object(
                GROUP, VERSION, ns, PLURAL, name, doc, _content_type="application/merge-patch+json"
            )
        return f"jwtsecret.{GROUP}/{name} serverside-applied"

    def create_namespace(self, name: str) -> None:
        self.core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    def wait(self, kind: str, ns: str, name: str, condition: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            if kind == "CustomResourceDefinition":
                if condition == "Established" and name == CRD_NAME and self.served(_crd(name)):
                    return f"customresourcedefinition.apiextensions.k8s.io/{name} condition met"
            else:
                try:
                    conditions = (self.read(kind, ns, name).get("status") or {}).get("conditions") or []
                except ApiException as exc:
                    if exc.status != 404:
                        raise
                    conditions = []
                if any(c["type"] == condition and c["status"] == "True" for c in conditions):
                    return f"{kind.lower()}.{GROUP}/{name} condition met"
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for the condition on {kind.lower()}/{name}")
            time.sleep(0.2)


def plain(api: client.ApiClient, obj: object) -> dict[str, Any]:
    """A typed client object as the JSON kubectl shows."""
    return dict(api.sanitize_for_serialization(obj))  # type: ignore[no-untyped-call]


def _crd(name: str) -> dict[str, Any]:
    """The CRD of crds/ named `name`."""
    for path in sorted((Path(__file__).resolve().parents[2] / "crds").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "CustomResourceDefinition" and doc["metadata"]["name"] == name:
                return dict(doc)
    raise RuntimeError(f"no CRD {name} in crds/")


def documents(filename: str) -> list[dict[str, Any]]:
    """The YAML documents of `-f`: a file, a folder's *.yaml/*.yml/*.json, or - (stdin)."""
    if filename == "-":
        texts = [sys.stdin.read()]
    else:
        path = Path(filename)
        files = (
            sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
            if path.is_dir()
            else [path]
        )
        texts = [p.read_text() for p in files]
    return [d for text in texts for d in yaml.safe_load_all(text) if d]


def run(argv: Sequence[str]) -> str:
    args = parse(argv)
    if args.verb == ["config", "current-context"]:
        kubeconfig = yaml.safe_load(Path(os.environ["KUBECONFIG"]).read_text())
        return str(kubeconfig["current-context"])
    kubectl = Kubectl(config.new_client_from_config(os.environ["KUBECONFIG"]))  # type: ignore[no-untyped-call]
    match args.verb:
        case ["apply"] if args.filename:
            return "\n".join(kubectl.apply(doc, args.namespace) for doc in documents(args.filename))
        case ["create", "namespace" | "ns", created]:
            kubectl.create_namespace(created)
            return f"namespace/{created} created"
        case ["delete", "namespace" | "ns", deleted]:
            kubectl.core.delete_namespace(deleted)
            return f'namespace "{deleted}" deleted'
        case ["wait", target] if args.wait_for and args.wait_for.startswith("condition="):
            kind, waited = kind_of(target)
            if waited is None:
                raise Unsupported("wait without a NAME")
            condition = args.wait_for.removeprefix("condition=")
            return kubectl.wait(kind, args.namespace, waited, condition, args.timeout)
        case ["get", resource, *names] if args.output in (None, "wide", "yaml") and len(names) <= 1:
            kind, named = kind_of(resource)
            one = named or (names[0] if names else None)
            found = [kubectl.read(kind, args.namespace, one)] if one else kubectl.listed(kind, args.namespace)
            if args.output == "yaml":  # other outputs: the names only (kubectl's columns are not drawn)
                return yaml.safe_dump(found[0] if one else {"items": found}, sort_keys=False).rstrip()
            return "\n".join(["NAME", *(obj["metadata"]["name"] for obj in found)])
    raise Unsupported("kubectl " + " ".join(argv))


def main() -> int:
    try:
        print(run(sys.argv[1:]))
    except Unsupported as exc:
        print(f"kubectl stand-in (emulator tier): not supported: {exc}; use the real tier", file=sys.stderr)
        return 2
    except (ApiException, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
