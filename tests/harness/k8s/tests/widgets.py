"""The emulator's test resource, Widget (example.dev/v1), and shortcuts to its API by the real client."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

G, V, P = "example.dev", "v1", "widgets"
CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{P}.{G}"},
    "spec": {
        "group": G,
        "scope": "Namespaced",
        "names": {"kind": "Widget", "plural": P, "singular": "widget", "shortNames": ["wd"]},
        "versions": [
            {
                "name": V,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "x-kubernetes-validations": [
                                    {
                                        "rule": "self.size <= self.max",
                                        "message": "size must not exceed max",
                                        "fieldPath": ".size",
                                    },
                                ],
                                "properties": {
                                    "size": {"type": "integer", "minimum": 0},
                                    "max": {"type": "integer", "default": 10},
                                    "name": {"type": "string", "pattern": "^[a-z]+$"},
                                    "tags": {"type": "array", "items": {"type": "string", "minLength": 1}},
                                    "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                                },
                            },
                            "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
                        },
                    }
                },
            }
        ],
    },
}


def custom(api: client.ApiClient) -> Any:
    return client.CustomObjectsApi(api)


def core(api: client.ApiClient) -> Any:
    return client.CoreV1Api(api)


def widget(api: client.ApiClient, ns: str, name: str = "w", **spec: Any) -> dict[str, Any]:
    body = {
        "apiVersion": f"{G}/{V}",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"size": 1, **spec},
    }
    result: dict[str, Any] = custom(api).create_namespaced_custom_object(G, V, ns, P, body)
    return result


def merge(api: client.ApiClient, ns: str, body: dict[str, Any], *, status: bool = False) -> dict[str, Any]:
    method = (
        custom(api).patch_namespaced_custom_object_status
        if status
        else custom(api).patch_namespaced_custom_object
    )
    result: dict[str, Any] = method(G, V, ns, P, "w", body, _content_type="application/merge-patch+json")
    return result


def api_error(call: Any) -> tuple[int, dict[str, Any]]:
    with pytest.raises(ApiException) as info:
        call()
    return info.value.status, json.loads(str(info.value.body))
