"""The API server's failures: Status responses, with the messages of apimachinery's apierrors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp.web

from tests.harness.k8s.kinds import Kind
from tests.harness.k8s.messages import FieldError, aggregate


class ApiError(Exception):
    """A Kubernetes Status response."""

    def __init__(
        self, code: int, reason: str, message: str, details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, dict(details or {})

    def response(self) -> aiohttp.web.Response:
        body = {
            "apiVersion": "v1",
            "kind": "Status",
            "metadata": {},
            "status": "Failure",
            "code": self.code,
            "reason": self.reason,
            "message": self.message,
            "details": self.details,
        }
        # Like the API server's priority-and-fairness rejections: 429 says when to come back.
        headers = {"Retry-After": "1"} if self.code == 429 else None
        return aiohttp.web.json_response(body, status=self.code, headers=headers)


def not_found(kind: Kind, name: str) -> ApiError:
    return _about(kind, name, 404, "NotFound", "not found")


def already_exists(kind: Kind, name: str) -> ApiError:
    return _about(kind, name, 409, "AlreadyExists", "already exists")


def _about(kind: Kind, name: str, code: int, reason: str, what: str) -> ApiError:
    details = {"name": name, "group": kind.key[0], "kind": kind.key[2]}
    return ApiError(code, reason, f'{kind.qualified} "{name}" {what}', details)


def conflict(kind: Kind, name: str, why: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {kind.qualified} "{name}": {why}',
        {"name": name, "kind": kind.key[2]},
    )


def invalid(kind: Kind, name: str | None, errors: list[FieldError]) -> ApiError:
    """The 422 of apierrors.NewInvalid: a cause per error, the message listing each one once."""
    causes = [{"reason": e.type, "message": e.body, "field": e.field} for e in errors]
    return ApiError(
        422,
        "Invalid",
        f'{kind.kind}.{kind.key[0]} "{name}" is invalid: {aggregate(errors)}',
        {"name": name, "group": kind.key[0], "kind": kind.kind, "causes": causes},
    )
