"""Gateway-native outputs: one module per gateway (pure), chosen by the key of each spec.outputs[] entry."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from jwks_operator.model.errors import SpecError
from jwks_operator.publish.gateways import fields
from jwks_operator.publish.gateways.base import Context, ObjectRef, Output, OutputError, Plan, Write
from jwks_operator.publish.gateways.envoygateway import EnvoyGatewayOutput
from jwks_operator.publish.gateways.istio import IstioOutput
from jwks_operator.publish.gateways.kong import KongOutput
from jwks_operator.publish.gateways.nginx import NginxOutput
from jwks_operator.publish.gateways.spacecloud import SpaceCloudOutput

__all__ = [
    "Context",
    "ObjectRef",
    "Output",
    "OutputError",
    "Plan",
    "Write",
    "parse_outputs",
    "restore",
]

MAX_OUTPUTS = 8
PARSERS: dict[str, Callable[[Mapping[str, Any], str], Output]] = {
    "istio": IstioOutput.parse,
    "envoyGateway": EnvoyGatewayOutput.parse,
    "spaceCloud": SpaceCloudOutput.parse,
    "kong": KongOutput.parse,
    "nginx": NginxOutput.parse,
}

# The fields an output's id is made of, in order: "<key>/<value>/..." (see output_id).
ID_FIELDS: dict[str, tuple[str, ...]] = {
    "istio": ("name",),
    "envoyGateway": ("securityPolicy",),
    "spaceCloud": ("projectId", "clusterId"),
    "kong": ("consumer",),
    "nginx": ("name",),
}


def output_id(key: str, *values: str | None) -> str:
    """An output's identity in status.outputs, from which restore() rebuilds it."""
    return "/".join([key, *(v or "" for v in values)])


def restore(identity: str) -> Output | None:
    """The output an id of status.outputs names, enough to release it (None: not one of ours)."""
    key, *values = identity.split("/")
    if key not in ID_FIELDS or len(values) != len(ID_FIELDS[key]):
        return None
    raw = {name: value for name, value in zip(ID_FIELDS[key], values, strict=True) if value}
    try:
        return PARSERS[key](raw, "status.outputs")
    except SpecError:
        return None


def parse_outputs(raw: Any) -> tuple[Output, ...]:
    """spec.outputs: each entry names exactly one gateway; no two entries write the same output."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise SpecError("spec.outputs", "must be a list")
    if len(raw) > MAX_OUTPUTS:
        raise SpecError("spec.outputs", f"must have at most {MAX_OUTPUTS} items")
    found: list[Output] = []
    for i, item in enumerate(raw):
        path = f"spec.outputs[{i}]"
        entry = fields.obj(item, path)
        kinds = [k for k in entry if entry[k] is not None]
        if len(kinds) != 1 or kinds[0] not in PARSERS:
            names = list(PARSERS)
            raise SpecError(path, f"exactly one of {', '.join(names[:-1])} or {names[-1]} must be set")
        output = PARSERS[kinds[0]](fields.obj(entry[kinds[0]], f"{path}.{kinds[0]}"), f"{path}.{kinds[0]}")
        if any(o.id == output.id for o in found):
            raise SpecError(path, f"duplicate output {output.id}")
        found.append(output)
    return tuple(found)
