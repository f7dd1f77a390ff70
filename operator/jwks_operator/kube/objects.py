"""The REST calls on one named object, as plain JSON (writes.Objects): core ConfigMaps/Secrets and custom
resources (gateways' objects). HTTP errors propagate as ApiException; a missing object reads as None, a
kind the API server does not serve (a gateway's CRD not installed) raises KindNotServedError."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from kubernetes.client.exceptions import ApiException

from jwks_operator.kube.http import ApiHttp, core_path, custom_path
from jwks_operator.model.errors import KindNotServedError
from jwks_operator.publish.bodies import TargetKind
from jwks_operator.publish.gateways.base import ObjectRef
from jwks_operator.publish.writes import Body


def _read(api: ApiHttp, where: str, kind: str) -> Body | None:
    try:
        return dict(api.request("GET", where))
    except ApiException as exc:
        if exc.status == 404 and _object_missing(exc.body):
            return None
        if exc.status == 404:
            raise KindNotServedError(
                f"the API server does not serve {kind} (is the gateway's CRD installed?)"
            ) from None
        raise


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


class _Named:
    """The REST calls on the object at `collection`/`name` (writes.Objects)."""

    kind: str
    name: str

    def __init__(self, api: ApiHttp, collection: str) -> None:
        self._api = api
        self._collection = collection
        self._at = f"{collection}/{quote(self.name, safe='')}"

    def read(self) -> Body | None:
        """The object, or None when it does not exist (KindNotServedError when its kind does not)."""
        return _read(self._api, self._at, self.kind)

    def create(self, body: Body) -> Body:
        return dict(self._api.request("POST", self._collection, body))

    def replace(self, body: Body) -> Body:
        return dict(self._api.request("PUT", self._at, body))

    def delete(self, preconditions: Mapping[str, Any]) -> None:
        options = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": dict(preconditions)}
        self._api.request("DELETE", self._at, options)


class TargetObject(_Named):
    """One named ConfigMap or Secret."""

    def __init__(self, api: ApiHttp, kind: TargetKind, namespace: str, name: str) -> None:
        self.kind, self.namespace, self.name = kind, namespace, name
        super().__init__(api, core_path("configmaps" if kind == "ConfigMap" else "secrets", namespace))


class CustomObject(_Named):
    """One named custom resource (a gateway's object)."""

    def __init__(self, api: ApiHttp, ref: ObjectRef) -> None:
        self.kind, self.name = ref.kind, ref.name
        super().__init__(api, custom_path(ref.group, ref.version, ref.plural, ref.namespace))
