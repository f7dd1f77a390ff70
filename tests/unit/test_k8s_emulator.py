"""The emulated API server behaves like a real one where the operator depends on it (real client, HTTP)."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.harness.k8s import ApiServer, EmulatedCluster, validate

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


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatedCluster]:
    with EmulatedCluster(crds=[CRD], history=50) as emulated:
        yield emulated


@pytest.fixture(scope="module")
def api(cluster: EmulatedCluster, tmp_path_factory: pytest.TempPathFactory) -> client.ApiClient:
    return cluster.api_client(tmp_path_factory.mktemp("kube") / "config")


@pytest.fixture
def ns(api: client.ApiClient) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    core(api).create_namespace({"metadata": {"name": name}})
    return name


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


def test_create_sets_metadata_defaults_and_drops_status(api: client.ApiClient, ns: str) -> None:
    created = custom(api).create_namespaced_custom_object(
        G,
        V,
        ns,
        P,
        {
            "apiVersion": f"{G}/{V}",
            "kind": "Widget",
            "metadata": {"name": "w"},
            "spec": {"size": 1, "unknown": "pruned", "free": {"any": {"thing": 1}}},
            "status": {"phase": "x"},
        },
    )
    meta = created["metadata"]
    assert meta["generation"] == 1
    assert meta["uid"]
    assert meta["creationTimestamp"].endswith("Z")
    assert int(meta["resourceVersion"]) > 0
    assert created["spec"] == {"size": 1, "max": 10, "free": {"any": {"thing": 1}}}
    assert "status" not in created
    status, body = api_error(lambda: widget(api, ns))
    assert (status, body["reason"], body["message"]) == (409, "AlreadyExists", f'{P}.{G} "w" already exists')


def test_names_are_validated(api: client.ApiClient, ns: str) -> None:
    status, body = api_error(lambda: core(api).create_namespace({"metadata": {"name": "Bad_Name"}}))
    assert status == 422
    assert "metadata.name: Invalid value" in body["message"]
    status, _ = api_error(
        lambda: core(api).create_namespaced_config_map(ns, {"metadata": {"name": "a" * 254}})
    )
    assert status == 422


def test_missing_namespace_and_object(api: client.ApiClient) -> None:
    status, body = api_error(lambda: widget(api, "nowhere"))
    assert (status, body["message"]) == (404, 'namespaces "nowhere" not found')
    status, body = api_error(lambda: core(api).read_namespaced_config_map("x", "default-missing"))
    assert (status, body["reason"], body["message"]) == (404, "NotFound", 'configmaps "x" not found')


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"size": -1},
            "spec.size: Invalid value: -1: spec.size in body should be greater than or equal to 0",
        ),
        (
            {"size": "big"},
            'spec.size: Invalid value: "string": spec.size in body must be of type integer: "string"',
        ),
        ({"size": 1, "name": "A1"}, "spec.name in body should match '^[a-z]+$'"),
        ({"size": 1, "tags": [""]}, "spec.tags[0] in body should be at least 1 chars long"),
        ({"size": 11}, 'spec.size: Invalid value: "object": size must not exceed max'),
        ({}, "spec.size: Required value"),
    ],
)
def test_schema_and_cel_violations_name_the_field(
    api: client.ApiClient, ns: str, spec: dict[str, Any], message: str
) -> None:
    body = {"apiVersion": f"{G}/{V}", "kind": "Widget", "metadata": {"name": "bad"}, "spec": spec}
    status, error = api_error(lambda: custom(api).create_namespaced_custom_object(G, V, ns, P, body))
    assert (status, error["reason"]) == (422, "Invalid")
    assert error["message"].startswith('Widget.example.dev "bad" is invalid: ')
    assert message in error["message"]
    assert error["details"]["causes"][0]["field"].startswith("spec")


NOT_CHECKED = (
    "<nil>: Invalid value: null: some validation rules were not checked because the object was invalid; "
    "correct the existing errors to complete validation"
)


@pytest.mark.parametrize(
    ("spec", "message", "causes"),
    [
        pytest.param(  # a type error blocks the CEL rules, which would fail too: they are not run
            {"size": 11, "tags": "x"},
            '[spec.tags: Invalid value: "string": spec.tags in body must be of type array: "string", '
            f"{NOT_CHECKED}]",
            [
                ("FieldValueTypeInvalid", "spec.tags"),
                ("FieldValueInvalid", "<nil>"),
            ],
            id="blocking-type-error",
        ),
        pytest.param(  # so does a missing required field
            {"max": 1},
            f"[spec.size: Required value, {NOT_CHECKED}]",
            [("FieldValueRequired", "spec.size"), ("FieldValueInvalid", "<nil>")],
            id="blocking-required",
        ),
        pytest.param(  # a pattern error does not: the CEL rules run beside it
            {"size": 11, "name": "A1"},
            "[spec.name: Invalid value: \"A1\": spec.name in body should match '^[a-z]+$', "
            'spec.size: Invalid value: "object": size must not exceed max]',
            [("FieldValueInvalid", "spec.name"), ("FieldValueInvalid", "spec.size")],
            id="cel-beside-pattern",
        ),
    ],
)
def test_blocking_errors_skip_cel_rules(
    api: client.ApiClient, ns: str, spec: dict[str, Any], message: str, causes: list[tuple[str, str]]
) -> None:
    """As kube-apiserver's customresource strategy: CEL rules run unless an earlier error is of a
    blocking kind (type, required, unsupported, too long, too many)."""
    body = {"apiVersion": f"{G}/{V}", "kind": "Widget", "metadata": {"name": "bad"}, "spec": spec}
    status, error = api_error(lambda: custom(api).create_namespaced_custom_object(G, V, ns, P, body))
    assert status == 422
    assert error["message"] == f'Widget.example.dev "bad" is invalid: {message}'
    found = [(c["reason"], c["field"]) for c in error["details"]["causes"]]
    assert found == causes
    assert all(not c["message"].startswith(c["field"]) for c in error["details"]["causes"])


SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "x-kubernetes-validations": [
                {"rule": "!has(self.every) || duration(self.every) > duration('0s')", "message": "every > 0"},
            ],
            "properties": {
                "every": {"type": "string", "maxLength": 8, "pattern": "^[0-9]+[smh]$"},
                "kind": {"type": "string", "enum": ["A", "B"]},
                "names": {
                    "type": "array",
                    "maxItems": 2,
                    "minItems": 1,
                    "x-kubernetes-list-type": "set",
                    "items": {"type": "string"},
                    "x-kubernetes-validations": [{"rule": "self.all(n, n != 'x')", "message": "no x"}],
                },
                "count": {"type": "number", "maximum": 1000000},
            },
        }
    },
}


@pytest.mark.parametrize(
    ("spec", "messages"),
    [
        ({"every": "1d"}, [  # the pattern fails, and CEL's duration() cannot parse it: both reported
            "spec.every: Invalid value: \"1d\": spec.every in body should match '^[0-9]+[smh]$'",
            "spec: Invalid value: \"object\": type conversion error from 'string' to "
            "'google.protobuf.Duration' evaluating rule: every > 0",
        ]),
        ({"every": "0s"}, ['spec: Invalid value: "object": every > 0']),
        ({"every": "123456789s"}, ["spec.every: Too long: may not be more than 8 bytes", NOT_CHECKED]),
        ({"kind": "C"}, ['spec.kind: Unsupported value: "C": supported values: "A", "B"', NOT_CHECKED]),
        ({"kind": 1}, [
            'spec.kind: Invalid value: "integer": spec.kind in body must be of type string: "integer"',
            'spec.kind: Unsupported value: 1: supported values: "A", "B"',
            NOT_CHECKED,
        ]),
        ({"names": ["a", "b", "a"]}, [
            "spec.names: Too many: 3: must have at most 2 items",
            'spec.names[2]: Duplicate value: "a"',
            NOT_CHECKED,
        ]),
        ({"names": []}, ["spec.names: Invalid value: 0: spec.names in body should have at least 1 items"]),
        ({"names": ["x", "x"]}, [
            'spec.names[1]: Duplicate value: "x"',  # list-type errors come after the schema's, then CEL's
            'spec.names: Invalid value: "array": no x',
        ]),
        ({"count": 2000000.5}, [  # Go's %v of a float64
            "spec.count: Invalid value: 2.0000005e+06: spec.count in body should be less than or equal to "
            "1e+06",
        ]),
    ],
)  # fmt: skip
def test_validation_messages_are_the_api_servers(spec: dict[str, Any], messages: list[str]) -> None:
    """kube-apiserver v1.34's wording and order (compared with a real one by tests/e2e/real)."""
    obj = {"metadata": {"name": "x"}, "spec": spec}
    assert validate(obj, SCHEMA) == [(m.split(": ", 1)[0], m) for m in messages]


def test_without_cel_no_rule_is_reported_skipped() -> None:
    """A server without CEL reports the schema's errors only, blocking or not."""
    obj = {"metadata": {"name": "x"}, "spec": {"every": "1d", "kind": "C"}}
    assert [m for _, m in validate(obj, SCHEMA, cel=False)] == [
        "spec.every: Invalid value: \"1d\": spec.every in body should match '^[0-9]+[smh]$'",
        'spec.kind: Unsupported value: "C": supported values: "A", "B"',
    ]


def test_status_subresource_isolation_generation_and_noop(api: client.ApiClient, ns: str) -> None:
    widget(api, ns)
    after_status = merge(
        api, ns, {"spec": {"size": 5}, "status": {"phase": "Ready", "undeclared": 1}}, status=True
    )
    assert after_status["spec"]["size"] == 1
    assert after_status["status"] == {"phase": "Ready"}
    assert after_status["metadata"]["generation"] == 1
    after_main = merge(api, ns, {"spec": {"size": 2}, "status": {"phase": "Hacked"}})
    assert (after_main["spec"]["size"], after_main["status"]["phase"]) == (2, "Ready")
    assert after_main["metadata"]["generation"] == 2
    labelled = merge(api, ns, {"metadata": {"labels": {"a": "b"}}})
    assert labelled["metadata"]["generation"] == 2
    noop = merge(api, ns, {"spec": {"size": 2}})
    assert noop["metadata"]["resourceVersion"] == labelled["metadata"]["resourceVersion"]


def test_stale_writes_conflict(api: client.ApiClient, ns: str) -> None:
    cm = core(api).create_namespaced_config_map(ns, {"metadata": {"name": "c"}, "data": {"a": "1"}})
    stale = cm.metadata.resource_version
    core(api).replace_namespaced_config_map(
        "c", ns, {"metadata": {"name": "c", "resourceVersion": stale}, "data": {"a": "2"}}
    )
    status, body = api_error(
        lambda: core(api).replace_namespaced_config_map(
            "c", ns, {"metadata": {"name": "c", "resourceVersion": stale}, "data": {"a": "3"}}
        )
    )
    assert (status, body["reason"]) == (409, "Conflict")
    assert "the object has been modified" in body["message"]
    status, _ = api_error(
        lambda: core(api).patch_namespaced_config_map(
            "c",
            ns,
            {"metadata": {"resourceVersion": stale}, "data": {"a": "4"}},
            _content_type="application/merge-patch+json",
        )
    )
    assert status == 409
    status, _ = api_error(
        lambda: core(api).delete_namespaced_config_map(
            "c", ns, body={"preconditions": {"resourceVersion": stale}}
        )
    )
    assert status == 409
    assert core(api).read_namespaced_config_map("c", ns).data == {"a": "2"}


def test_patch_content_types(cluster: EmulatedCluster, api: client.ApiClient, ns: str) -> None:
    core(api).create_namespaced_config_map(ns, {"metadata": {"name": "c"}, "data": {"a": "1"}})
    raw = urllib.request.Request(  # the client rewrites this mistake, so send it by hand
        f"{cluster.url}/api/v1/namespaces/{ns}/configmaps/c",
        data=b'{"data": {"a": "2"}}',
        method="PATCH",
        headers={"Content-Type": "application/json-patch+json"},
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(raw)
    assert info.value.code == 400  # a JSON patch must be a list of operations
    patched = core(api).patch_namespaced_config_map(
        "c", ns, {"data": {"b": "2"}}, _content_type="application/strategic-merge-patch+json"
    )
    assert patched.data == {"a": "1", "b": "2"}
    widget(api, ns)
    assert (
        custom(api).patch_namespaced_custom_object(G, V, ns, P, "w", {"spec": {"size": 2}})["spec"]["size"]
        == 2
    )
    ops = [{"op": "replace", "path": "/spec/size", "value": 3}]
    replaced = custom(api).patch_namespaced_custom_object(
        G, V, ns, P, "w", ops, _content_type="application/json-patch+json"
    )
    assert replaced["spec"]["size"] == 3
    for ctype in ("application/strategic-merge-patch+json", "application/apply-patch+yaml"):
        status, _ = api_error(
            lambda c=ctype: custom(api).patch_namespaced_custom_object(
                G, V, ns, P, "w", {"spec": {"size": 2}}, _content_type=c
            )
        )
        assert status == 415
    assert merge(api, ns, {"spec": {"tags": ["a"], "max": None}})["spec"] == {
        "size": 3,
        "max": 10,
        "tags": ["a"],
    }


def test_secret_string_data_is_stored_as_data(api: client.ApiClient, ns: str) -> None:
    secret = core(api).create_namespaced_secret(ns, {"metadata": {"name": "s"}, "stringData": {"k": "v"}})
    assert secret.data == {"k": "dg=="}
    assert secret.string_data is None


def test_finalizers_delay_deletion(api: client.ApiClient, ns: str) -> None:
    widget(api, ns)
    merge(api, ns, {"metadata": {"finalizers": ["x/y"]}})
    custom(api).delete_namespaced_custom_object(G, V, ns, P, "w")
    marked = custom(api).get_namespaced_custom_object(G, V, ns, P, "w")
    assert marked["metadata"]["deletionTimestamp"]
    merge(api, ns, {"metadata": {"finalizers": None}})
    status, _ = api_error(lambda: custom(api).get_namespaced_custom_object(G, V, ns, P, "w"))
    assert status == 404


def test_owner_references_are_garbage_collected(api: client.ApiClient, ns: str) -> None:
    owner = widget(api, ns)
    ref = {"apiVersion": f"{G}/{V}", "kind": "Widget", "name": "w", "uid": owner["metadata"]["uid"]}
    other = widget(api, ns, "o")
    ref2 = {"apiVersion": f"{G}/{V}", "kind": "Widget", "name": "o", "uid": other["metadata"]["uid"]}
    core(api).create_namespaced_config_map(ns, {"metadata": {"name": "dep", "ownerReferences": [ref]}})
    core(api).create_namespaced_config_map(
        ns, {"metadata": {"name": "shared", "ownerReferences": [ref, ref2]}}
    )
    core(api).create_namespaced_config_map(ns, {"metadata": {"name": "orphan", "ownerReferences": [ref2]}})
    custom(api).delete_namespaced_custom_object(G, V, ns, P, "w")
    names = {c.metadata.name for c in core(api).list_namespaced_config_map(ns).items}
    assert names == {"shared", "orphan"}
    shared_refs = core(api).read_namespaced_config_map("shared", ns).metadata.owner_references
    assert [r.name for r in shared_refs] == ["o"]  # the dangling reference was removed
    custom(api).delete_namespaced_custom_object(G, V, ns, P, "o", body={"propagationPolicy": "Orphan"})
    assert {c.metadata.name for c in core(api).list_namespaced_config_map(ns).items} == {"shared", "orphan"}


def test_namespace_deletion_removes_its_objects(api: client.ApiClient) -> None:
    core(api).create_namespace({"metadata": {"name": "doomed"}})
    core(api).create_namespaced_config_map("doomed", {"metadata": {"name": "c"}})
    core(api).delete_namespace("doomed")
    assert not [
        c for c in core(api).list_config_map_for_all_namespaces().items if c.metadata.namespace == "doomed"
    ]


def test_label_and_field_selectors(api: client.ApiClient, ns: str) -> None:
    for name, labels in [("a", {"app": "x", "tier": "web"}), ("b", {"app": "y"}), ("c", {})]:
        core(api).create_namespaced_config_map(ns, {"metadata": {"name": name, "labels": labels}})

    def names(**kwargs: str) -> list[str]:
        return [c.metadata.name for c in core(api).list_namespaced_config_map(ns, **kwargs).items]

    assert names(label_selector="app=x") == ["a"]
    assert names(label_selector="app!=x") == ["b", "c"]
    assert names(label_selector="app") == ["a", "b"]
    assert names(label_selector="!app") == ["c"]
    assert names(label_selector="app in (x, y),tier") == ["a"]
    assert names(label_selector="app notin (x)") == ["b", "c"]
    assert names(field_selector="metadata.name=b") == ["b"]


def watch(cluster: EmulatedCluster, path: str, seconds: int = 1) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{cluster.url}{path}&timeoutSeconds={seconds}") as response:
        return [json.loads(line) for line in response.read().splitlines() if line.strip()]


def test_watch_resume_selector_transitions_and_expiry(
    cluster: EmulatedCluster, api: client.ApiClient, ns: str
) -> None:
    base = f"/api/v1/namespaces/{ns}/configmaps?watch=true"
    start = core(api).list_namespaced_config_map(ns).metadata.resource_version
    core(api).create_namespaced_config_map(ns, {"metadata": {"name": "m", "labels": {"on": "1"}}})
    core(api).patch_namespaced_config_map(
        "m", ns, {"metadata": {"labels": {"on": None}}}, _content_type="application/merge-patch+json"
    )
    events = watch(cluster, f"{base}&resourceVersion={start}")
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED"]
    selected = watch(cluster, f"{base}&resourceVersion={start}&labelSelector=on")
    assert [e["type"] for e in selected] == ["ADDED", "DELETED"]
    assert [e["type"] for e in watch(cluster, f"{base}&resourceVersion=0")] == ["ADDED"]
    for i in range(60):
        core(api).create_namespaced_config_map(ns, {"metadata": {"name": f"x{i}"}})
    (expired,) = watch(cluster, f"{base}&resourceVersion={start}")
    assert (expired["type"], expired["object"]["code"]) == ("ERROR", 410)


def test_live_watch_and_faults(cluster: EmulatedCluster, api: client.ApiClient, ns: str) -> None:
    seen: list[list[dict[str, Any]]] = []
    rv = core(api).list_namespaced_config_map(ns).metadata.resource_version
    reader = threading.Thread(
        target=lambda: seen.append(
            watch(cluster, f"/api/v1/namespaces/{ns}/configmaps?watch=true&resourceVersion={rv}", 2)
        )
    )
    reader.start()
    cluster.call(lambda server: server.inject("create", "configmaps", status=503))
    status, body = api_error(lambda: core(api).create_namespaced_config_map(ns, {"metadata": {"name": "f"}}))
    assert (status, body["reason"]) == (503, "InjectedFault")
    core(api).create_namespaced_config_map(ns, {"metadata": {"name": "f"}})
    reader.join()
    assert [e["object"]["metadata"]["name"] for e in seen[0]] == ["f"]
    counts = cluster.call(ApiServer.counts)
    assert counts[("create", "configmaps")] >= 2
