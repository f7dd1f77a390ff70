"""The REST calls on one named object, as plain JSON (writes.Objects): core ConfigMaps/Secrets and custom
resources (gateways' objects). HTTP errors propagate as ApiException; a missing object reads as None."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kubernetes.client.exceptions import ApiException

from .bodies import TargetKind
from .gateways.base import ObjectRef
from .writes import Body


def _read(call: Any, *args: Any, **options: Any) -> Body | None:
    try:
        response = call(*args, **options)
    except ApiException as exc:
        if exc.status == 404 and _object_missing(exc.body):
            return None
        raise
    found: Body = json.loads(response.data)
    return found


def _object_missing(body: Any) -> bool:
    """Whether a 404 says the object is missing, not its kind (a gateway's CRD not installed: then the
    answer is no Status naming the object, e.g. "404 page not found")."""
    if not body:
        return True  # nothing more said: take it as the object
    try:
        status = json.loads(body)
    except (TypeError, ValueError):
        return False
    return isinstance(status, dict) and bool((status.get("details") or {}).get("name"))


class TargetObject:
    """The REST calls on one named ConfigMap or Secret, as plain JSON (writes.Objects)."""

    def __init__(self, core: Any, kind: TargetKind, namespace: str, name: str, timeout: float) -> None:
        self.kind, self.namespace, self.name = kind, namespace, name
        self._core = core
        self._resource = "config_map" if kind == "ConfigMap" else "secret"
        self._options = {"_preload_content": False, "_request_timeout": timeout}

    def _call(self, verb: str) -> Any:
        return getattr(self._core, f"{verb}_namespaced_{self._resource}")

    def read(self) -> Body | None:
        """The object, or None when it does not exist."""
        return _read(self._call("read"), self.name, self.namespace, **self._options)

    def create(self, body: Body) -> None:
        self._call("create")(self.namespace, body, **self._options)

    def replace(self, body: Body) -> None:
        self._call("replace")(self.name, self.namespace, body, **self._options)

    def delete(self, preconditions: Mapping[str, Any]) -> None:
        options = {"preconditions": dict(preconditions)}
        self._call("delete")(self.name, self.namespace, body=options, **self._options)


class CustomObject:
    """The REST calls on one named custom resource (a gateway's object), as plain JSON (writes.Objects)."""

    def __init__(self, custom: Any, ref: ObjectRef, timeout: float) -> None:
        self.kind, self.name = ref.kind, ref.name
        self._custom = custom
        self._at = (ref.group, ref.version, ref.namespace, ref.plural)
        self._options = {"_preload_content": False, "_request_timeout": timeout}

    def read(self) -> Body | None:
        """The object, or None when it (or its kind: the gateway's CRD is not installed) does not exist."""
        return _read(self._custom.get_namespaced_custom_object, *self._at, self.name, **self._options)

    def create(self, body: Body) -> None:
        self._custom.create_namespaced_custom_object(*self._at, body, **self._options)

    def replace(self, body: Body) -> None:
        self._custom.replace_namespaced_custom_object(*self._at, self.name, body, **self._options)

    def delete(self, preconditions: Mapping[str, Any]) -> None:
        options = {"preconditions": dict(preconditions)}
        self._custom.delete_namespaced_custom_object(*self._at, self.name, body=options, **self._options)
