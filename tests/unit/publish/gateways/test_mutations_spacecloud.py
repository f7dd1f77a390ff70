"""Space Cloud output, paths the mutation run found untested (issue #28): project ConfigMaps missing
members, a release from a project whose secretSource is admin, and when the write is needed at all."""

from __future__ import annotations

import json
from typing import Any

import pytest

from jwks_operator.keys.keyset import build_key_set
from jwks_operator.publish.gateways.base import MANAGED_ANNOTATION, OutputError
from tests.material import public_jwk, rsa_key
from tests.unit.publish.gateways.helpers import apply
from tests.unit.publish.gateways.test_spacecloud import (
    NAME,
    ORDERS,
    R1,
    R2,
    SHOP,
    config,
    context,
    entry,
    project,
    the_write,
)


def reason(existing: dict[str, Any]) -> str:
    with pytest.raises(OutputError) as refused:
        the_write(context()).mutate(existing)
    return refused.value.reason


def test_a_configmap_without_metadata_or_labels_is_no_project() -> None:
    bare = {k: v for k, v in project().items() if k != "metadata"}
    assert reason(bare) == "OutputConflict"
    unlabelled = project()
    del unlabelled["metadata"]["labels"]
    assert reason(unlabelled) == "OutputConflict"


def test_a_project_configmap_without_data_is_unreadable() -> None:
    empty = project()
    del empty["data"]
    assert reason(empty) == "InvalidProjectConfig"


def published(**config: Any) -> dict[str, Any]:
    """The project as our write leaves it (entries for R1 and R2), then `config` set by hand."""
    body: dict[str, Any] = apply(the_write(context()), project())
    body["data"]["data"] = json.dumps({**json.loads(body["data"]["data"]), **config})
    return body


def test_leaving_a_project_whose_secret_source_is_admin_takes_our_entries_out() -> None:
    """secretSource admin refuses new entries (Space Cloud would ignore them); taking ours out is fine."""
    (release,) = SHOP.release(ORDERS, [NAME])
    left = apply(release, published(secretSource="admin"))
    assert "secrets" not in config(left)
    assert MANAGED_ANNOTATION not in (left["metadata"].get("annotations") or {})


def test_a_stale_mark_alone_is_written_away() -> None:
    """Our entries were removed by hand, our mark stayed: releasing clears the mark (one write)."""
    (release,) = SHOP.release(ORDERS, [NAME])
    left = apply(release, published(secrets=[]))
    assert MANAGED_ANNOTATION not in (left["metadata"].get("annotations") or {})
    assert config(left).get("secrets", []) == []


def test_new_material_under_the_same_kid_is_written() -> None:
    """A provider that reissues kid r1 with another key: same kids, another entry."""
    reissued = build_key_set([public_jwk(rsa_key(n=2), kid="r1"), R2])
    body = apply(the_write(context(key_set=reissued)), published())
    written = {e["kid"]: e for e in config(body)["secrets"]}
    assert sorted(written) == ["r1", "r2"]
    assert written["r1"]["publicKey"] != entry(R1)["publicKey"]
    assert written["r2"] == entry(R2)


def test_our_entries_unchanged_write_nothing() -> None:
    assert the_write(context()).mutate(published()) is None


def test_our_entries_removed_by_hand_are_written_again() -> None:
    """Our mark still names them, but the project lacks them: the write puts them back (and keeps the
    mark), rather than take the unchanged mark for an up-to-date project."""
    body = apply(the_write(context()), published(secrets=[]))
    assert config(body)["secrets"] == [entry(R1), entry(R2)]
    assert (
        body["metadata"]["annotations"][MANAGED_ANNOTATION]
        == published()["metadata"]["annotations"][MANAGED_ANNOTATION]
    )
