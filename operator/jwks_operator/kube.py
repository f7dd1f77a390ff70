"""Kubernetes adapter (the official client, sync): read Secrets, publish outputs, patch status, events."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar

import urllib3
from cryptography import x509
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from . import __version__
from .errors import ApiCallError, FetchError, SecretRefError, TargetConflictError
from .names import (
    API_VERSION,
    GROUP,
    KIND,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    PLURAL,
    SHARED_ANNOTATION,
    VERSION,
)
from .outputs import aggregate, labels, owner_reference
from .spec import CaBundleRef
from .status import timestamp

MERGE_PATCH = "application/merge-patch+json"
PublishResult = Literal["created", "updated", "unchanged"]
TargetKind = Literal["ConfigMap", "Secret"]
DEFAULT_TIMEOUT = 30.0
P = ParamSpec("P")
R = TypeVar("R")


def _retry_after(exc: ApiException) -> float | None:
    """The Retry-After seconds of a 429/503 answer, if given."""
    value = (exc.headers or {}).get("Retry-After")
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None


def api_errors(method: Callable[Concatenate[Kube, P], R]) -> Callable[Concatenate[Kube, P], R]:
    """Turn API failures the method did not handle (HTTP errors, timeouts, refused connections) into
    ApiCallError, which the engine retries with backoff while the last published keys stay."""

    def wrapper(self: Kube, /, *args: P.args, **kwargs: P.kwargs) -> R:
        what = method.__name__.replace("_", " ")
        try:
            return method(self, *args, **kwargs)
        except ApiException as exc:
            raise ApiCallError(
                f"Kubernetes API error ({what}): HTTP {exc.status} {exc.reason}",
                status=exc.status,
                retry_after=_retry_after(exc),
            ) from None
        except urllib3.exceptions.HTTPError as exc:
            raise ApiCallError(f"Kubernetes API unreachable ({what}): {type(exc).__name__}") from None

    wrapper.__name__, wrapper.__doc__ = method.__name__, method.__doc__
    return wrapper


@dataclass(frozen=True)
class Owner:
    """The JwtSecret that owns a published object."""

    namespace: str
    name: str
    uid: str


def load_api_client(component: str = "jwks-operator") -> client.ApiClient:
    """In-cluster config when running in a pod, else the local kubeconfig; `component` names the
    User-Agent (the operator and the verify command are told apart in API audit logs)."""
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    api = client.ApiClient()
    api.user_agent = f"{component}/{__version__}"
    return api


class Kube:
    """Thin wrapper over the API calls the operator makes (all sync: call from a thread)."""

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        component: str = "jwks-operator",
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        # Plain dict bodies (not model classes) keep this adapter small; the client serializes both.
        self.core: Any = client.CoreV1Api(api_client)
        self.custom: Any = client.CustomObjectsApi(api_client)
        self.component = component
        self.timeout = timeout  # per request: a stalled API server must not hang a reconcile forever

    @api_errors
    def read_secret_key(self, namespace: str, name: str, key: str) -> bytes:
        """The raw bytes of one key of a Secret; SecretRefError names what is missing."""
        try:
            secret = self.core.read_namespaced_secret(name, namespace, _request_timeout=self.timeout)
        except ApiException as exc:
            if exc.status == 404:
                raise SecretRefError(f"spec.static.secretRef: Secret {name} not found") from None
            raise
        data = secret.data or {}
        if key not in data:
            raise SecretRefError(f"spec.static.secretRef.key: Secret {name} has no key {key!r}")
        return base64.b64decode(data[key])

    @api_errors
    def read_ca_bundle(self, namespace: str, ref: CaBundleRef) -> str:
        """The PEM CA bundle a caBundleRef names; FetchError (keeping the last keys) when unusable."""
        found = self._read(ref.kind, namespace, ref.name)
        if found is None:
            raise FetchError(f"spec.caBundleRef: {ref.kind} {ref.name} not found")
        value = (found.get("data") or {}).get(ref.key)
        if value is None:
            raise FetchError(f"spec.caBundleRef.key: {ref.kind} {ref.name} has no key {ref.key!r}")
        pem = base64.b64decode(value).decode() if ref.kind == "Secret" else str(value)
        try:
            x509.load_pem_x509_certificates(pem.encode())
        except ValueError:
            raise FetchError(
                f"spec.caBundleRef: {ref.kind} {ref.name} key {ref.key!r} holds no PEM certificate"
            ) from None
        return pem

    @api_errors
    def publish(
        self, kind: TargetKind, owner: Owner, name: str, data: Mapping[str, str], *, new: bool = False
    ) -> PublishResult:
        """Create or update our ConfigMap/Secret; never touch one we do not own. With `new` (nothing
        published yet), try the create first: one request instead of a read and a create."""
        encoded = _encode(kind, data)
        for attempt in range(5):
            existing = None if new and attempt == 0 else self._read(kind, owner.namespace, name)
            if existing is None:
                body = self._body(kind, owner, name, encoded, None)
                try:
                    self._create(kind, owner.namespace, body)
                except ApiException as exc:
                    if exc.status == 409:
                        continue  # created concurrently: re-read and check ownership
                    raise
                return "created"
            _check_owned(kind, existing, owner, name)
            if dict(existing.get("data") or {}) == encoded and _has_labels(existing, owner.name):
                return "unchanged"
            version = existing["metadata"].get("resourceVersion")
            body = self._body(kind, owner, name, encoded, version, existing)
            try:
                self._replace(kind, owner.namespace, name, body)
            except ApiException as exc:
                if exc.status in (404, 409):
                    continue  # deleted or changed meanwhile: start over
                raise
            return "updated"
        raise TargetConflictError(f"{kind} {name} kept changing while being written; will retry")

    @api_errors
    def publish_shared(
        self, kind: TargetKind, owner: Owner, name: str, part: Mapping[str, str] | None
    ) -> PublishResult | Literal["deleted"]:
        """Merge (or, with part None, remove) our part of a shared target, guarded by resourceVersion."""
        ours = owner_reference(owner.name, owner.uid, controller=False)
        for _ in range(8):
            existing = self._read(kind, owner.namespace, name)
            if existing is None:
                if part is None:
                    return "unchanged"
                body = self._body(kind, owner, name, _encode(kind, aggregate({}, owner.name, part)), None)
                body["metadata"]["ownerReferences"] = [ours]
                body["metadata"]["annotations"] = {SHARED_ANNOTATION: "true"}
                try:
                    self._create(kind, owner.namespace, body)
                except ApiException as exc:
                    if exc.status == 409:
                        continue
                    raise
                return "created"
            meta = existing["metadata"]
            managed = (meta.get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY
            if not managed or (meta.get("annotations") or {}).get(SHARED_ANNOTATION) != "true":
                raise TargetConflictError(
                    f"{kind} {name} already exists and is not a shared jwks-operator target; "
                    "it was left untouched"
                )
            others = [r for r in meta.get("ownerReferences") or [] if r.get("uid") != owner.uid]
            refs = others + ([ours] if part is not None else [])
            if not refs:
                options = {"preconditions": {"resourceVersion": meta.get("resourceVersion")}}
                try:
                    self._delete(kind, owner.namespace, name, options)
                except ApiException as exc:
                    if exc.status in (404, 409):
                        continue
                    raise
                return "deleted"
            data = _decode(kind, existing.get("data") or {})
            live = {str(r.get("name")) for r in refs if r.get("kind") == KIND}
            new = _encode(kind, aggregate(data, owner.name, part, live))
            if new == dict(existing.get("data") or {}) and refs == meta.get("ownerReferences"):
                return "unchanged"
            body = {**existing, "data": new, "metadata": {**meta, "ownerReferences": refs}}
            try:
                self._replace(kind, owner.namespace, name, body)
            except ApiException as exc:
                if exc.status in (404, 409):
                    continue  # another contributor wrote first: merge again on top of theirs
                raise
            return "updated"
        raise TargetConflictError(f"{kind} {name} kept changing while being written; will retry")

    def _delete(self, kind: TargetKind, namespace: str, name: str, options: Mapping[str, Any]) -> None:
        delete = (
            self.core.delete_namespaced_config_map
            if kind == "ConfigMap"
            else self.core.delete_namespaced_secret
        )
        delete(name, namespace, body=dict(options), _preload_content=False, _request_timeout=self.timeout)

    def _read(self, kind: TargetKind, namespace: str, name: str) -> dict[str, Any] | None:
        read = (
            self.core.read_namespaced_config_map if kind == "ConfigMap" else self.core.read_namespaced_secret
        )
        try:
            response = read(name, namespace, _preload_content=False, _request_timeout=self.timeout)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        result: dict[str, Any] = _json(response)
        return result

    def _create(self, kind: TargetKind, namespace: str, body: dict[str, Any]) -> None:
        if kind == "ConfigMap":
            self.core.create_namespaced_config_map(
                namespace, body, _preload_content=False, _request_timeout=self.timeout
            )
        else:
            self.core.create_namespaced_secret(
                namespace, body, _preload_content=False, _request_timeout=self.timeout
            )

    def _replace(self, kind: TargetKind, namespace: str, name: str, body: dict[str, Any]) -> None:
        if kind == "ConfigMap":
            self.core.replace_namespaced_config_map(
                name, namespace, body, _preload_content=False, _request_timeout=self.timeout
            )
        else:
            self.core.replace_namespaced_secret(
                name, namespace, body, _preload_content=False, _request_timeout=self.timeout
            )

    @staticmethod
    def _body(
        kind: TargetKind,
        owner: Owner,
        name: str,
        data: Mapping[str, str],
        resource_version: str | None,
        existing: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        meta: dict[str, Any] = dict((existing or {}).get("metadata") or {})
        meta.update(name=name, namespace=owner.namespace)
        meta["labels"] = {**(meta.get("labels") or {}), **labels(owner.name)}
        meta["ownerReferences"] = [owner_reference(owner.name, owner.uid)]
        if resource_version is not None:
            meta["resourceVersion"] = resource_version
        body: dict[str, Any] = {"apiVersion": "v1", "kind": kind, "metadata": meta, "data": dict(data)}
        if kind == "Secret":
            body["type"] = "Opaque"
        return body

    @api_errors
    def delete_owned(self, kind: TargetKind, owner: Owner, name: str) -> bool:
        """Delete our old output (after a target change) if it is still ours; True if deleted."""
        existing = self._read(kind, owner.namespace, name)
        if existing is None or not _owned_by(existing, owner):
            return False
        meta = existing["metadata"]
        options = {"preconditions": {"uid": meta.get("uid"), "resourceVersion": meta.get("resourceVersion")}}
        try:
            self._delete(kind, owner.namespace, name, options)
        except ApiException as exc:
            if exc.status in (404, 409):
                return False
            raise
        return True

    def read_published(self, namespace: str, name: str, *, via_jwtsecret: bool = False) -> dict[str, str]:
        """The data of a published ConfigMap, or of whatever a JwtSecret's status names as its target."""
        kind: str = "ConfigMap"
        if via_jwtsecret:
            obj = self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
            target = (obj.get("status") or {}).get("target") or {}
            if not target.get("name"):
                raise LookupError(f"JwtSecret {namespace}/{name} has published nothing yet")
            kind, name = str(target.get("kind")), str(target["name"])
        found = self._read("Secret" if kind == "Secret" else "ConfigMap", namespace, name)
        if found is None:
            raise LookupError(f"{kind} {namespace}/{name} not found")
        return _decode("Secret" if kind == "Secret" else "ConfigMap", found.get("data") or {})

    @api_errors
    def patch_status(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        """Merge-patch the JwtSecret's status subresource."""
        self.custom.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            {"status": dict(patch)},
            _content_type=MERGE_PATCH,
            _preload_content=False,
            _request_timeout=self.timeout,
        )

    @api_errors
    def event(self, owner: Owner, type_: Literal["Normal", "Warning"], reason: str, message: str) -> None:
        """Record a core/v1 Event on the JwtSecret (best effort: failures are swallowed by the caller)."""
        now = timestamp(datetime.now(UTC))
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{owner.name}.{secrets.token_hex(8)}", "namespace": owner.namespace},
            "involvedObject": {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "name": owner.name,
                "namespace": owner.namespace,
                "uid": owner.uid,
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": self.component},
            "reportingComponent": self.component,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        self.core.create_namespaced_event(
            owner.namespace, body, _preload_content=False, _request_timeout=self.timeout
        )


def _json(response: Any) -> Any:
    return json.loads(response.data)


def _decode(kind: TargetKind, data: Mapping[str, str]) -> dict[str, str]:
    if kind == "ConfigMap":
        return dict(data)
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def _encode(kind: TargetKind, data: Mapping[str, str]) -> dict[str, str]:
    if kind == "ConfigMap":
        return dict(data)
    return {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}


def _has_labels(existing: Mapping[str, Any], owner_name: str) -> bool:
    current = existing.get("metadata", {}).get("labels") or {}
    return all(current.get(k) == v for k, v in labels(owner_name).items())


def _owned_by(existing: Mapping[str, Any], owner: Owner) -> bool:
    """Ours when it names this JwtSecret (by uid) as owner; a label removed by hand is put back."""
    meta = existing.get("metadata") or {}
    return any(ref.get("uid") == owner.uid for ref in meta.get("ownerReferences") or [])


def _check_owned(kind: str, existing: Mapping[str, Any], owner: Owner, name: str) -> None:
    if not _owned_by(existing, owner):
        meta = existing.get("metadata") or {}
        refs = meta.get("ownerReferences") or []
        holder = next((f"{r.get('kind')} {r.get('name')}" for r in refs if r.get("controller")), None)
        why = f"is owned by {holder}" if holder else "is not managed by jwks-operator"
        if (meta.get("annotations") or {}).get(SHARED_ANNOTATION) == "true":
            why = "is a shared target (set spec.target.shared: true to contribute to it)"
        raise TargetConflictError(f"{kind} {name} already exists and {why}; it was left untouched")
