"""The emulated API server's storage and write semantics, through the real client over HTTP."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from kubernetes import client

from tests.harness.k8s import EmulatedCluster
from tests.harness.k8s.tests.widgets import G, P, V, api_error, core, custom, merge, widget


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
