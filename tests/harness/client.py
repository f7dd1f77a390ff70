"""The tests' client of a cluster: the real `kubernetes` client, with shortcuts for JwtSecrets."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from jwks_operator.model.names import GROUP, PLURAL, VERSION

T = TypeVar("T")


def wait_for(check: Callable[[], T | None], timeout: float = 20.0, what: str = "condition") -> T:
    """Poll until `check` returns a truthy value; fail with the last value otherwise."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (ApiException, KeyError, IndexError, TypeError) as exc:
            last = exc
        else:
            if last:
                result: T = last
                return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last value: {last!r}")


class ClusterClient:
    """The real `kubernetes` client, with shortcuts for JwtSecrets."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.core: Any = client.CoreV1Api(api)
        self.custom: Any = client.CustomObjectsApi(api)

    @classmethod
    def from_kubeconfig(cls, path: Path) -> ClusterClient:
        return cls(config.new_client_from_config(str(path)))  # type: ignore[no-untyped-call]

    @contextlib.contextmanager
    def namespace(self, prefix: str) -> Iterator[str]:
        """A fresh namespace, `<prefix>-<8 random hex digits>`, deleted afterwards."""
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        yield name
        self.core.delete_namespace(name)

    def create(self, ns: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "JwtSecret",
            "metadata": {"name": name},
            "spec": spec,
        }
        result: dict[str, Any] = self.custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body)
        return result

    def get(self, ns: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)
        return result

    def patch_spec(self, ns: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL, name, {"spec": spec}, _content_type="application/merge-patch+json"
        )
        return result

    def delete(self, ns: str, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)

    def condition(self, ns: str, name: str, kind: str = "Ready") -> dict[str, Any] | None:
        status = self.get(ns, name).get("status") or {}
        return next((c for c in status.get("conditions") or [] if c["type"] == kind), None)

    def wait_condition(
        self,
        ns: str,
        name: str,
        status: str = "True",
        reason: str | None = None,
        kind: str = "Ready",
        timeout: float = 20.0,
    ) -> dict[str, Any]:
        """Wait until the condition has that status (and reason); return the whole object."""

        def check() -> dict[str, Any] | None:
            obj = self.get(ns, name)
            conds = (obj.get("status") or {}).get("conditions") or []
            cond = next((c for c in conds if c["type"] == kind), None)
            ok = cond is not None and cond["status"] == status and reason in (None, cond["reason"])
            return (
                obj
                if ok and obj["status"].get("observedGeneration") == obj["metadata"]["generation"]
                else None
            )

        return wait_for(check, timeout, f"{kind}={status} ({reason}) on {ns}/{name}")

    def configmap(self, ns: str, name: str) -> Any:
        return self.core.read_namespaced_config_map(name, ns)

    def events(self, ns: str, name: str) -> list[Any]:
        items = self.core.list_namespaced_event(ns).items
        return [e for e in items if e.involved_object.name == name]
