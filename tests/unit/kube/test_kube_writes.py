"""The Kubernetes adapter's one write loop (writes.write) and the Kube methods built on it, against an
in-memory CoreV1Api (no sockets) that keeps resourceVersions and answers 404/409 as the API server does."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest
import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from jwks_operator.kube.adapter import Kube, Owner
from jwks_operator.kube.objects import TargetObject
from jwks_operator.model.errors import ApiCallError, OutputTooLargeError, TargetConflictError
from jwks_operator.model.names import (
    JWKS_KEY,
    POLICY_KEY,
    SHARED_ANNOTATION,
    SHARED_OWNER_ANNOTATION,
    TARGET_ALLOW_PART,
)
from jwks_operator.publish.allow import ALLOW_ANNOTATION
from jwks_operator.publish.writes import DELETE, Body, Known, write

NS = "ns"
OWNER = Owner(NS, "a", "uid-a")
OTHER = Owner(NS, "b", "uid-b")
DATA = {JWKS_KEY: '{"keys": []}\n', POLICY_KEY: "{}\n"}
NEW_DATA = {JWKS_KEY: '{"keys": [{"kid": "new"}]}\n', POLICY_KEY: "{}\n"}


VERBS = {"GET": "read", "POST": "create", "PUT": "replace", "DELETE": "delete"}
RESOURCES = {"configmaps": "config_map", "secrets": "secret"}


class FakeCore:
    """ConfigMap and Secret requests (kube.http's) over a dict, with injectable failures and interleavings."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], Body] = {}
        self.resources: dict[tuple[str, str], str] = {}  # config_map or secret
        self.calls: list[str] = []
        self.sent: list[Body] = []  # bodies of creates and replaces
        self.faults: dict[str, list[Exception]] = {}
        self.before: dict[str, list[Callable[[], object]]] = {}
        self.version = 0

    def fail(self, verb: str, status: int, times: int = 1) -> None:
        self.faults.setdefault(verb, []).extend(ApiException(status=status) for _ in range(times))

    def request(self, method: str, where: str, body: Any = None, *, content_type: str = "") -> Body:
        """/api/v1/namespaces/NS/PLURAL[/NAME], as ApiHttp.request answers it."""
        _, api, v1, namespaces, namespace, plural, *name = where.split("/")
        assert (api, v1, namespaces) == ("api", "v1", "namespaces"), where
        assert plural in RESOURCES, where
        verb = VERBS[method]
        if self.before.get(verb):
            self.before[verb].pop(0)()
        self.calls.append(verb)
        if verb in ("create", "replace"):
            self.sent.append(body)
        if self.faults.get(verb):
            raise self.faults[verb].pop(0)
        resource = RESOURCES[plural]
        if verb == "create":
            return self._create(resource, namespace, body)
        current = self.objects.get((namespace, name[0]))
        if current is None or self.resources[(namespace, name[0])] != resource:
            raise ApiException(status=404, reason="Not Found")
        if verb == "read":
            found: Body = json.loads(json.dumps(current))
            return found
        if verb == "delete":
            wanted = body["preconditions"]
            if any(current["metadata"].get(k) != v for k, v in wanted.items()):
                raise ApiException(status=409, reason="Conflict")
            del self.objects[(namespace, name[0])]
            return {}
        body = json.loads(json.dumps(body))
        version = body["metadata"].get("resourceVersion")
        if version is not None and version != current["metadata"]["resourceVersion"]:
            raise ApiException(status=409, reason="Conflict")
        body["metadata"]["uid"] = current["metadata"]["uid"]
        return self._store(resource, namespace, body)

    def _create(self, resource: str, namespace: str, body: Body) -> Body:
        name = body["metadata"]["name"]
        if (namespace, name) in self.objects:
            raise ApiException(status=409, reason="AlreadyExists")
        body = json.loads(json.dumps(body))
        assert "resourceVersion" not in body["metadata"]
        body["metadata"]["uid"] = f"uid-of-{name}"
        return self._store(resource, namespace, body)

    def _store(self, resource: str, namespace: str, body: Body) -> Body:
        self.version += 1
        body["metadata"]["resourceVersion"] = str(self.version)
        self.objects[(namespace, body["metadata"]["name"])] = body
        self.resources[(namespace, body["metadata"]["name"])] = resource
        return body


@pytest.fixture
def core() -> FakeCore:
    return FakeCore()


@pytest.fixture
def kube(core: FakeCore) -> Kube:
    kube = Kube(client.ApiClient())  # no request is made through it
    kube.http = core  # type: ignore[assignment]
    return kube


def seed(
    core: FakeCore,
    name: str,
    data: Mapping[str, str],
    *,
    refs: list[dict[str, Any]],
    resource: str = "config_map",
    **meta: Any,
) -> None:
    """An object as someone (maybe we) wrote it before, written without a call being counted."""
    metadata = {"name": name, "uid": f"uid-of-{name}", "ownerReferences": refs, **meta}
    core._store(resource, NS, {"metadata": metadata, "data": dict(data)})


def ref(owner: Owner, *, controller: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": "jwks.dev/v1alpha1",
        "kind": "JwtSecret",
        "name": owner.name,
        "uid": owner.uid,
        "controller": controller,
    }


# -- publish: one owner ---------------------------------------------------------------------------------


def test_creates_when_absent(kube: Kube, core: FakeCore) -> None:
    assert kube.publish("ConfigMap", OWNER, "out", DATA) == "created"
    stored = core.objects[(NS, "out")]
    assert stored["data"] == DATA
    assert stored["metadata"]["ownerReferences"] == [ref(OWNER)]
    assert stored["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "jwks-operator"
    assert core.calls == ["read", "create"]


def test_new_creates_without_a_read_and_secrets_are_base64(kube: Kube, core: FakeCore) -> None:
    assert kube.publish("Secret", OWNER, "out", {"k": "v"}, new=True) == "created"
    assert core.calls == ["create"]
    assert core.objects[(NS, "out")]["data"] == {"k": "dg=="}
    assert core.objects[(NS, "out")]["type"] == "Opaque"


def test_updates_when_changed_guarded_by_the_version_read(kube: Kube, core: FakeCore) -> None:
    seed(core, "out", DATA, refs=[ref(OWNER)], labels={"keep": "me"})
    assert kube.publish("ConfigMap", OWNER, "out", NEW_DATA) == "updated"
    stored = core.objects[(NS, "out")]
    assert stored["data"] == NEW_DATA
    assert stored["metadata"]["labels"]["keep"] == "me"
    assert core.calls == ["read", "replace"]
    assert core.sent[0]["metadata"]["resourceVersion"] == "1"


def test_a_known_target_is_replaced_without_a_read_keeping_what_was_read(kube: Kube, core: FakeCore) -> None:
    seed(core, "out", DATA, refs=[ref(OWNER)], labels={"keep": "me"}, annotations={"note": "theirs"})
    known = Known()
    assert kube.publish("ConfigMap", OWNER, "out", NEW_DATA, known=known) == "updated"
    assert core.calls == ["read", "replace"]
    assert known.body is not None
    assert "managedFields" not in known.body["metadata"]
    core.calls.clear()
    assert kube.publish("ConfigMap", OWNER, "out", DATA, known=known) == "updated"
    assert core.calls == ["replace"]  # from what it wrote: no read
    stored = core.objects[(NS, "out")]
    assert stored["data"] == DATA
    assert stored["metadata"]["labels"]["keep"] == "me"
    assert stored["metadata"]["annotations"] == {"note": "theirs"}
    assert core.sent[-1]["metadata"]["resourceVersion"] == "2"


def test_a_known_target_changed_since_is_read_again(kube: Kube, core: FakeCore) -> None:
    known = Known()
    assert kube.publish("ConfigMap", OWNER, "out", DATA, new=True, known=known) == "created"
    stored = core.objects[(NS, "out")]
    stored["metadata"]["labels"]["added"] = "later"  # someone else's change: a new resourceVersion
    core._store("config_map", NS, stored)
    core.calls.clear()
    assert kube.publish("ConfigMap", OWNER, "out", NEW_DATA, known=known) == "updated"
    assert core.calls == ["replace", "read", "replace"]  # refused (409), read, written
    assert core.objects[(NS, "out")]["metadata"]["labels"]["added"] == "later"
    core.calls.clear()
    del core.objects[(NS, "out")]  # deleted meanwhile: the guarded replace is refused (404), then created
    assert kube.publish("ConfigMap", OWNER, "out", DATA, known=known) == "created"
    assert core.calls == ["replace", "create"]


def test_no_write_when_unchanged(kube: Kube, core: FakeCore) -> None:
    kube.publish("ConfigMap", OWNER, "out", DATA)
    core.calls.clear()
    assert kube.publish("ConfigMap", OWNER, "out", DATA) == "unchanged"
    assert core.calls == ["read"]


def test_removed_label_is_put_back(kube: Kube, core: FakeCore) -> None:
    seed(core, "out", DATA, refs=[ref(OWNER)])
    assert kube.publish("ConfigMap", OWNER, "out", DATA) == "updated"
    assert core.objects[(NS, "out")]["metadata"]["labels"]["jwks.dev/jwtsecret"] == "a"


def test_conflict_on_update_is_retried_then_succeeds(kube: Kube, core: FakeCore) -> None:
    seed(core, "out", DATA, refs=[ref(OWNER)])
    core.fail("replace", 409, times=2)
    assert kube.publish("ConfigMap", OWNER, "out", NEW_DATA) == "updated"
    assert core.calls == ["read", "replace"] * 3
    assert core.objects[(NS, "out")]["data"] == NEW_DATA


def test_conflicts_beyond_the_attempts_raise_target_conflict(kube: Kube, core: FakeCore) -> None:
    seed(core, "out", DATA, refs=[ref(OWNER)])
    core.fail("replace", 409, times=5)
    with pytest.raises(TargetConflictError, match="ConfigMap out kept changing while being written") as e:
        kube.publish("ConfigMap", OWNER, "out", NEW_DATA)
    assert "(5 conflict(s) with another writer, 0 time(s) deleted meanwhile)" in e.value.message
    assert core.calls.count("replace") == 5


def test_deletions_beyond_the_attempts_are_named_not_hidden_as_conflicts(kube: Kube, core: FakeCore) -> None:
    seed(core, "out", DATA, refs=[ref(OWNER)])
    core.fail("replace", 404, times=5)
    with pytest.raises(TargetConflictError) as e:
        kube.publish("ConfigMap", OWNER, "out", NEW_DATA)
    assert "deleted meanwhile" in e.value.message
    assert "0 time(s) deleted" not in e.value.message
    assert core.objects[(NS, "out")]["data"] == DATA


def test_deleted_during_update_is_created(kube: Kube, core: FakeCore) -> None:
    seed(core, "out", DATA, refs=[ref(OWNER)])
    core.before["replace"] = [lambda: core.objects.clear()]
    assert kube.publish("ConfigMap", OWNER, "out", NEW_DATA) == "created"
    assert core.calls == ["read", "replace", "create"]
    assert core.objects[(NS, "out")]["data"] == NEW_DATA


def test_created_meanwhile_is_read_again(kube: Kube, core: FakeCore) -> None:
    core.before["create"] = [lambda: seed(core, "out", DATA, refs=[ref(OWNER)])]
    assert kube.publish("ConfigMap", OWNER, "out", NEW_DATA, new=True) == "updated"
    assert core.calls == ["create", "read", "replace"]


@pytest.mark.parametrize(
    ("meta", "why"),
    [
        ({"refs": []}, "is not managed by jwks-operator"),
        (
            {"refs": [{"kind": "Deployment", "name": "web", "uid": "w", "controller": True}]},
            "by Deployment web",
        ),
        (
            {"refs": [ref(OTHER, controller=False)], "annotations": {SHARED_ANNOTATION: "true"}},
            "a shared target",
        ),
    ],
)
def test_not_ours_is_left_untouched(kube: Kube, core: FakeCore, meta: dict[str, Any], why: str) -> None:
    seed(core, "out", {"x": "y"}, **meta)
    with pytest.raises(TargetConflictError, match=why):
        kube.publish("ConfigMap", OWNER, "out", DATA)
    assert core.calls == ["read"]


def test_not_ours_created_meanwhile_is_a_conflict(kube: Kube, core: FakeCore) -> None:
    core.before["create"] = [lambda: seed(core, "out", {"x": "y"}, refs=[])]
    with pytest.raises(TargetConflictError, match="left untouched"):
        kube.publish("ConfigMap", OWNER, "out", DATA, new=True)
    assert core.objects[(NS, "out")]["data"] == {"x": "y"}


def test_other_errors_name_the_call(kube: Kube, core: FakeCore) -> None:
    seed(core, "out", DATA, refs=[ref(OWNER)])
    throttled = ApiException(status=429, reason="Too Many Requests")
    throttled.headers = {"Retry-After": "7"}
    core.faults["replace"] = [throttled]
    with pytest.raises(ApiCallError, match=r"\(publish\): HTTP 429") as caught:
        kube.publish("ConfigMap", OWNER, "out", NEW_DATA)
    assert (caught.value.status, caught.value.retry_after) == (429, 7.0)
    core.faults["read"] = [urllib3.exceptions.ReadTimeoutError(None, "/", "timed out")]  # type: ignore[arg-type]
    with pytest.raises(ApiCallError, match=r"unreachable \(publish shared\): ReadTimeoutError"):
        kube.publish_shared("ConfigMap", OWNER, "out", DATA)
    core.fail("create", 404)  # the namespace is gone: no retry
    with pytest.raises(ApiCallError, match="HTTP 404"):
        kube.publish("ConfigMap", OWNER, "new", DATA, new=True)


# -- delete_owned ---------------------------------------------------------------------------------------


def test_delete_owned_only_ours_guarded_by_uid_and_version(kube: Kube, core: FakeCore) -> None:
    seed(core, "mine", DATA, refs=[ref(OWNER)])
    seed(core, "theirs", DATA, refs=[ref(OTHER)])
    assert kube.delete_owned("ConfigMap", OWNER, "theirs") is False
    assert kube.delete_owned("ConfigMap", OWNER, "gone") is False
    assert "delete" not in core.calls
    core.before["delete"] = [lambda: seed(core, "mine", NEW_DATA, refs=[ref(OWNER)])]  # changed meanwhile
    assert kube.delete_owned("ConfigMap", OWNER, "mine") is True
    assert (NS, "mine") not in core.objects
    assert core.calls[-4:] == ["read", "delete", "read", "delete"]


def test_delete_owned_deleted_meanwhile(kube: Kube, core: FakeCore) -> None:
    seed(core, "mine", DATA, refs=[ref(OWNER)])
    core.before["delete"] = [lambda: core.objects.clear()]
    assert kube.delete_owned("ConfigMap", OWNER, "mine") is False
    assert core.calls == ["read", "delete"]


# -- publish_shared ---------------------------------------------------------------------------------------


def part(kid: str, allow: str | None = None, k: str | None = None) -> dict[str, str]:
    """One contributor's part (with `allow`: the spec.target.allow of the JwtSecret, as render gives it)."""
    keys = {"keys": [{"kty": "oct", "kid": kid, "k": k or kid}]}
    return {JWKS_KEY: json.dumps(keys), POLICY_KEY: "{}"} | ({TARGET_ALLOW_PART: allow} if allow else {})


def kids(core: FakeCore) -> list[str]:
    return [k["kid"] for k in json.loads(core.objects[(NS, "shared")]["data"][JWKS_KEY])["keys"]]


def test_shared_merge_keeps_a_concurrent_contributors_part(kube: Kube, core: FakeCore) -> None:
    assert kube.publish_shared("ConfigMap", OWNER, "shared", part("a1", allow="b")) == "created"
    # b's first write lands between a's read and a's replace: a's replace is stale, merged again on top.
    core.before["replace"] = [
        lambda: None,
        lambda: kube.publish_shared("ConfigMap", OTHER, "shared", part("b")),
    ]
    kube.publish_shared("ConfigMap", OTHER, "shared", part("b0"))
    assert kube.publish_shared("ConfigMap", OWNER, "shared", part("a2", allow="b")) == "updated"
    assert sorted(kids(core)) == ["a2", "b"]
    meta = core.objects[(NS, "shared")]["metadata"]
    assert [r["uid"] for r in meta["ownerReferences"]] == ["uid-b", "uid-a"]
    assert meta["annotations"] == {
        SHARED_ANNOTATION: "true",
        SHARED_OWNER_ANNOTATION: "a",
        ALLOW_ANNOTATION: "b",
    }
    assert TARGET_ALLOW_PART not in core.objects[(NS, "shared")]["data"]
    assert core.calls[-5:] == ["read", "replace", "replace", "read", "replace"]


def test_shared_last_one_out_deletes(kube: Kube, core: FakeCore) -> None:
    kube.publish_shared("ConfigMap", OWNER, "shared", part("a", allow="b"))
    kube.publish_shared("ConfigMap", OTHER, "shared", part("b"))
    assert kube.publish_shared("ConfigMap", OWNER, "shared", None) == "updated"
    assert kids(core) == ["b"]
    core.before["delete"] = [lambda: kube.publish_shared("ConfigMap", OWNER, "shared", part("a", allow="b"))]
    assert kube.publish_shared("ConfigMap", OTHER, "shared", None) == "updated"  # a came back: kept
    assert kids(core) == ["a"]
    assert kube.publish_shared("ConfigMap", OWNER, "shared", None) == "deleted"
    assert core.objects == {}
    assert kube.publish_shared("ConfigMap", OWNER, "shared", None) == "unchanged"


@pytest.mark.parametrize(
    "meta",
    [
        {"labels": {"app.kubernetes.io/managed-by": "jwks-operator"}},  # one JwtSecret's own output
        {"annotations": {SHARED_ANNOTATION: "true"}},  # not written by jwks-operator
    ],
)
def test_shared_refuses_an_object_not_shared_by_us(kube: Kube, core: FakeCore, meta: dict[str, Any]) -> None:
    seed(core, "shared", DATA, refs=[ref(OTHER)], **meta)
    with pytest.raises(TargetConflictError, match="is not a shared jwks-operator target"):
        kube.publish_shared("ConfigMap", OWNER, "shared", part("a"))
    assert core.calls == ["read"]


def test_shared_drops_the_part_of_a_contributor_no_longer_owning_it(kube: Kube, core: FakeCore) -> None:
    kube.publish_shared("ConfigMap", OWNER, "shared", part("a", allow="b"))
    kube.publish_shared("ConfigMap", OTHER, "shared", part("b"))
    core.objects[(NS, "shared")]["metadata"]["ownerReferences"].pop(1)  # b deleted: the GC removed its ref
    assert kube.publish_shared("ConfigMap", OWNER, "shared", part("a2", allow="b")) == "updated"
    assert kids(core) == ["a2"]
    assert "b.jwks.json" not in core.objects[(NS, "shared")]["data"]


def test_shared_puts_back_a_removed_owner_reference(kube: Kube, core: FakeCore) -> None:
    kube.publish_shared("ConfigMap", OWNER, "shared", part("a", allow="b"))
    kube.publish_shared("ConfigMap", OTHER, "shared", part("b"))
    core.objects[(NS, "shared")]["metadata"]["ownerReferences"].pop(0)  # a's, removed by hand: data alike
    assert kube.publish_shared("ConfigMap", OWNER, "shared", part("a", allow="b")) == "updated"
    assert [r["uid"] for r in core.objects[(NS, "shared")]["metadata"]["ownerReferences"]] == [
        "uid-b",
        "uid-a",
    ]
    assert sorted(kids(core)) == ["a", "b"]


def test_joining_a_shared_target_takes_its_creators_allow(kube: Kube, core: FakeCore) -> None:
    """Before: any JwtSecret of the namespace could join a shared target."""
    kube.publish_shared("ConfigMap", OWNER, "shared", part("a"))
    with pytest.raises(TargetConflictError) as refused:
        kube.publish_shared("ConfigMap", OTHER, "shared", part("b"))
    assert refused.value.message == (
        "ConfigMap shared is a shared target of JwtSecret a, which does not allow JwtSecret b to contribute "
        "(a's spec.target.allow must list it; it is kept in the annotation jwks.dev/allow-jwtsecrets); "
        "it was left untouched"
    )
    assert kube.publish_shared("ConfigMap", OWNER, "shared", part("a", allow="c, b")) == "updated"
    assert kube.publish_shared("ConfigMap", OTHER, "shared", part("b", allow="*")) == "updated"
    meta = core.objects[(NS, "shared")]["metadata"]
    assert meta["annotations"][ALLOW_ANNOTATION] == "c, b"  # b's allow is not b's to set: a created it
    assert sorted(kids(core)) == ["a", "b"]
    # a narrows the list: b's part goes at a's next write (its ownerReference stays: the change reaches b,
    # whose write is refused and says why), and b may not come back
    assert kube.publish_shared("ConfigMap", OWNER, "shared", part("a", allow="c")) == "updated"
    assert kids(core) == ["a"]
    assert [r["name"] for r in core.objects[(NS, "shared")]["metadata"]["ownerReferences"]] == ["b", "a"]
    with pytest.raises(TargetConflictError, match="does not allow JwtSecret b"):
        kube.publish_shared("ConfigMap", OTHER, "shared", part("b"))
    assert kube.publish_shared("ConfigMap", OTHER, "shared", None) == "updated"  # leaving is always allowed
    assert [r["name"] for r in core.objects[(NS, "shared")]["metadata"]["ownerReferences"]] == ["a"]
    assert kube.publish_shared("ConfigMap", OWNER, "shared", part("a", allow="*")) == "updated"
    assert kube.publish_shared("ConfigMap", OTHER, "shared", part("b")) == "updated"
    assert sorted(kids(core)) == ["a", "b"]
    assert kube.publish_shared("ConfigMap", OWNER, "shared", part("a")) == "updated"  # a's allow removed
    assert ALLOW_ANNOTATION not in core.objects[(NS, "shared")]["metadata"]["annotations"]
    assert kids(core) == ["a"]


def test_a_target_from_before_the_allow_list_is_owned_by_its_creator_label(
    kube: Kube, core: FakeCore
) -> None:
    labels = {"app.kubernetes.io/managed-by": "jwks-operator", "jwks.dev/jwtsecret": "a"}
    old = {f"{n}.{suffix}": v for n in ("a", "b") for suffix, v in part(n).items()}
    seed(
        core,
        "shared",
        old,
        refs=[ref(OWNER), ref(OTHER)],
        labels=labels,
        annotations={SHARED_ANNOTATION: "true"},
    )
    with pytest.raises(
        TargetConflictError, match="shared target of JwtSecret a, which does not allow JwtSecret b"
    ):
        kube.publish_shared("ConfigMap", OTHER, "shared", part("b2"))
    assert kube.publish_shared("ConfigMap", OWNER, "shared", part("a", allow="b")) == "updated"
    assert core.objects[(NS, "shared")]["metadata"]["annotations"][SHARED_OWNER_ANNOTATION] == "a"
    assert kube.publish_shared("ConfigMap", OTHER, "shared", part("b2")) == "updated"
    assert sorted(kids(core)) == ["a", "b2"]


def test_a_kid_collision_is_refused_never_resolved_by_name(kube: Kube, core: FakeCore) -> None:
    """Before: `aa-intruder` sorted first and its `prod` key replaced team A's in the merged jwks.json."""
    team = Owner(NS, "team-a", "uid-t")
    intruder = Owner(NS, "aa-intruder", "uid-i")
    kube.publish_shared("ConfigMap", team, "shared", part("prod", allow="*", k="team-a-secret"))
    with pytest.raises(TargetConflictError) as clash:
        kube.publish_shared("ConfigMap", intruder, "shared", part("prod", k="intruder-secret"))
    assert clash.value.message == (
        "ConfigMap shared is shared, and kid 'prod' (JwtSecret team-a) names other key material there: the "
        "keys of JwtSecret aa-intruder were not merged (a kid must name one key: rename one of them)"
    )
    merged = json.loads(core.objects[(NS, "shared")]["data"][JWKS_KEY])["keys"]
    assert merged == [{"kty": "oct", "kid": "prod", "k": "team-a-secret"}]
    assert "aa-intruder.jwks.json" not in core.objects[(NS, "shared")]["data"]
    # the same key under the same kid is no collision; team-a changing its own key is not one either
    assert kube.publish_shared("ConfigMap", intruder, "shared", part("prod", k="team-a-secret")) == "updated"
    assert kube.publish_shared("ConfigMap", intruder, "shared", part("other", k="x")) == "updated"
    assert kube.publish_shared("ConfigMap", team, "shared", part("prod", allow="*", k="rotated")) == "updated"
    assert sorted(kids(core)) == ["other", "prod"]


# -- the loop itself ---------------------------------------------------------------------------------------


def Store(core: FakeCore) -> TargetObject:
    """The real writes.Objects of a ConfigMap "obj", over the FakeCore, for driving write() by hand."""
    return TargetObject(core, "ConfigMap", NS, "obj")  # type: ignore[arg-type]


def count_up(existing: Mapping[str, Any] | None) -> Body:
    """A read-modify-write that loses an increment if a write is not guarded by what it read."""
    n = int((existing or {}).get("data", {}).get("n", "0"))
    return {"metadata": {"name": "obj"}, "data": {"n": str(n + 1)}}  # no resourceVersion of its own


def test_loop_guards_replace_with_the_version_it_read(core: FakeCore) -> None:
    store = Store(core)
    write(store, count_up)
    core.before["replace"] = [lambda: write(store, count_up)]  # a concurrent increment
    assert write(store, count_up) == "updated"
    assert core.objects[(NS, "obj")]["data"] == {"n": "3"}


def test_loop_attempts_and_mutate_answers(core: FakeCore) -> None:
    store = Store(core)
    assert write(store, lambda existing: None) == "unchanged"
    assert write(store, count_up, absent=True) == "created"
    core.fail("replace", 409, times=2)
    with pytest.raises(TargetConflictError, match="ConfigMap obj kept changing"):
        write(store, count_up, attempts=2)
    assert write(store, count_up, attempts=1) == "updated"
    core.before["delete"] = [lambda: core.objects.clear()]
    assert write(store, lambda existing: DELETE) == "unchanged"  # deleted meanwhile: 404, then nothing to do
    assert core.calls[-2:] == ["read", "delete"]
    assert write(store, lambda existing: DELETE) == "unchanged"  # absent: nothing to delete
    assert core.calls[-1] == "read"
    assert write(store, count_up) == "created"
    seen: list[Mapping[str, Any] | None] = []
    assert write(store, lambda existing: seen.append(existing)) == "unchanged"
    assert seen[0] is not None
    assert seen[0]["data"] == {"n": "1"}


def test_data_too_large_for_one_object_is_refused_before_any_request(kube: Kube, core: FakeCore) -> None:
    big = {"jwks.json": "x" * (900 * 1024)}
    with pytest.raises(OutputTooLargeError, match="over the 921600-byte limit of one object"):
        kube.publish("ConfigMap", OWNER, "out", big)
    assert core.calls == [], "nothing sent: the API server would refuse it (and retries would loop)"


def test_any_object_too_large_for_the_api_server_is_refused_before_the_request(core: FakeCore) -> None:
    store = Store(core)
    huge = "x" * (1024 * 1024)
    with pytest.raises(OutputTooLargeError, match="over the 1048576-byte limit of one object"):
        write(store, lambda existing: {"metadata": {"name": "obj"}, "data": {"n": huge}}, absent=True)
    assert "create" not in core.calls
