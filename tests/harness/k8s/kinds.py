"""What the emulated API server serves: a few built-in resources, plus the served versions of CRDs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

Obj = dict[str, Any]
ResKey = tuple[str, str, str]  # group, version, plural
NAMESPACES: ResKey = ("", "v1", "namespaces")
SECRETS: ResKey = ("", "v1", "secrets")
BUILTINS: list[tuple[ResKey, str, bool]] = [  # key, kind, namespaced
    (NAMESPACES, "Namespace", False),
    (("", "v1", "configmaps"), "ConfigMap", True),
    (SECRETS, "Secret", True),
    (("", "v1", "events"), "Event", True),
    (("events.k8s.io", "v1", "events"), "Event", True),
    (("coordination.k8s.io", "v1", "leases"), "Lease", True),
]


@dataclass
class Kind:
    """What the server knows of one resource."""

    key: ResKey
    kind: str
    namespaced: bool
    status_subresource: bool = False
    schema: Mapping[str, Any] | None = None
    custom: bool = False
    shortnames: tuple[str, ...] = ()
    singular: str = ""

    @property
    def api_version(self) -> str:
        return f"{self.key[0]}/{self.key[1]}" if self.key[0] else self.key[1]

    @property
    def qualified(self) -> str:
        return f"{self.key[2]}.{self.key[0]}" if self.key[0] else self.key[2]


def served_kinds(crds: Iterable[Mapping[str, Any]]) -> list[Kind]:
    """The built-in kinds, then a Kind per served version of each CustomResourceDefinition."""
    kinds = [Kind(key, kind, namespaced) for key, kind, namespaced in BUILTINS]
    for crd in crds:
        spec = crd["spec"]
        names = spec["names"]
        for version in spec["versions"]:
            if version.get("served", True):
                kinds.append(
                    Kind(
                        (spec["group"], version["name"], names["plural"]),
                        names["kind"],
                        spec["scope"] == "Namespaced",
                        "status" in (version.get("subresources") or {}),
                        version["schema"]["openAPIV3Schema"],
                        custom=True,
                        shortnames=tuple(names.get("shortNames", [])),
                        singular=names.get("singular") or "",
                    )
                )
    return kinds


def load_crds(directory: Path) -> list[Obj]:
    """Every CustomResourceDefinition in the YAML files of a directory."""
    docs = [d for p in sorted(directory.glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]
    return [d for d in docs if d.get("kind") == "CustomResourceDefinition"]
