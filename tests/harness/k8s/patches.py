"""PATCH bodies by content type: JSON merge patch (RFC 7386; also strategic merge for built-ins, which
the emulator merges the same way), JSON patch (RFC 6902); 415 for apply and strategic merge of custom
resources, as the API server answers."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch

from tests.harness.k8s.kinds import Kind, Obj
from tests.harness.k8s.status import ApiError

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def patched(kind: Kind, current: Obj, content_type: str, data: Any) -> tuple[Obj, str | None]:
    """The object after the patch, and the resourceVersion the patch carries (a precondition)."""
    ctype = content_type.split(";")[0].strip()
    if ctype == JSON_PATCH:
        if not isinstance(data, list):
            raise ApiError(
                400,
                "BadRequest",
                "json: cannot unmarshal object into Go value of type []handlers.jsonPatchOp",
            )
        try:
            return jsonpatch.apply_patch(current, data), None
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
            raise ApiError(422, "Invalid", f"the JSON patch could not be applied: {exc}") from None
    if ctype == STRATEGIC_MERGE_PATCH and kind.custom:
        raise ApiError(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: "
            "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
        )
    if ctype in (MERGE_PATCH, STRATEGIC_MERGE_PATCH):
        if not isinstance(data, dict):
            raise ApiError(400, "BadRequest", "a merge patch must be a JSON object")
        return merge_patch(current, data), (data.get("metadata") or {}).get("resourceVersion")
    raise ApiError(
        415,
        "UnsupportedMediaType",
        f"the emulator does not support {ctype or 'no'} patches (server-side apply is not emulated)",
    )
