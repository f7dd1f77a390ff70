"""Kubernetes adapter (the official client, sync: call from a thread).

Reads Secrets and CA bundles, publishes ConfigMap/Secret outputs, patches status, records events. Each
publish or delete is writes.write() on a TargetObject with a pure `mutate` from bodies. The HTTP errors
and timeouts nothing handled become ApiCallError naming the Kube method (the engine retries with backoff).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from jwks_operator import __version__
from jwks_operator.fetch.trust import MAX_CA_BUNDLE_BYTES, check_ca_bundle
from jwks_operator.keys.keyset import MIN_HMAC_BYTES
from jwks_operator.keys.members import printable
from jwks_operator.kube.http import MERGE_PATCH, ApiHttp, core_path, custom_path
from jwks_operator.kube.objects import CustomObject, TargetObject
from jwks_operator.model.errors import ApiCallError, FetchError, SecretNotAvailableError
from jwks_operator.model.names import API_VERSION, GROUP, JWKS_KEY, KIND, PLURAL, POLICY_KEY, VERSION
from jwks_operator.publish import bodies
from jwks_operator.publish.allow import ALLOW_ANNOTATION, HMAC_EXPORT_ANNOTATION, allowed
from jwks_operator.publish.bodies import Owner, TargetKind
from jwks_operator.publish.gateways.base import ObjectRef
from jwks_operator.publish.outputs import part_keys
from jwks_operator.publish.writes import Known, Mutate, Outcome, write
from jwks_operator.resource.spec import CaBundleRef
from jwks_operator.resource.status import timestamp

__all__ = [
    "DEFAULT_TIMEOUT",
    "MERGE_PATCH",
    "Kube",
    "Owner",
    "PublishResult",
    "SecretKey",
    "TargetKind",
    "api_errors",
    "load_api_client",
]

PublishResult = Literal["created", "updated", "unchanged"]
DEFAULT_TIMEOUT = 30.0
P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class SecretKey:
    """One key of a Secret, and whether its owner lets it leave Secrets (HMAC_EXPORT_ANNOTATION lists the
    JwtSecret that read it)."""

    raw: bytes = field(repr=False)
    exportable: bool = False


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


def load_api_client(
    component: str = "jwks-operator",
    connections: int = 10,
    *,
    kubeconfig: str | None = None,
    context: str | None = None,
) -> client.ApiClient:
    """In-cluster config when running in a pod, else the local kubeconfig; a `kubeconfig` file or a
    `context` given (as kubectl's --kubeconfig and --context) always reads a kubeconfig, at that context.
    `component` names the User-Agent (the operator and the verify command are told apart in API audit
    logs); `connections`: at least as many as requests may run at once, or each extra one opens (TLS) and
    drops a connection."""
    if kubeconfig is None and context is None:
        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
        except config.ConfigException:
            config.load_kube_config()  # type: ignore[no-untyped-call]
    else:
        config.load_kube_config(config_file=kubeconfig, context=context)  # type: ignore[no-untyped-call]
    configuration = client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = max(connections, configuration.connection_pool_maxsize or 0)
    api = client.ApiClient(configuration)
    api.user_agent = f"{component}/{__version__}"
    return api


class Kube:
    """The API calls the operator makes (all sync: call from a thread). Their HTTP errors and timeouts
    become ApiCallError, except in read_published (the verify command's), which lets them through."""

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        component: str = "jwks-operator",
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        # Plain JSON over the client's pool and credentials (kube/http.py), never its model classes.
        self.http = ApiHttp(api_client, timeout)  # a stalled API server must not hang a reconcile forever
        self.component = component

    @api_errors
    def read_secret_key(
        self, namespace: str, name: str, key: str, jwtsecret: str | None = None, uid: str | None = None
    ) -> SecretKey:
        """The raw bytes of one key of a Secret whose owner lets JwtSecret `jwtsecret` (of `uid`) use it: the
        Secret's annotation jwks.dev/allow-jwtsecrets lists it (by name, or as name/uid), or "*" (for an
        unnamed caller, only "*" does); exportable when its jwks.dev/allow-hmac-export lists it too.

        SecretNotAvailableError otherwise, and when the Secret is absent, lacks the key or holds fewer bytes
        than any HMAC algorithm needs: one message for all, that tells nothing about a Secret that did not
        opt in (whether it exists, its keys, its length)."""
        secret = self._object("Secret", namespace, name).read()
        who = jwtsecret or "*"  # no JwtSecret is named "*": unnamed, only "*" allows
        readable = secret if secret is not None and allowed(secret, who, uid) else None
        value = (readable.get("data") or {}).get(key) if readable is not None else None
        try:
            raw = base64.b64decode(value) if isinstance(value, str) else b""
        except ValueError:
            raw = b""
        if len(raw) < min(MIN_HMAC_BYTES.values()):
            raise SecretNotAvailableError(
                f"spec.static.secretRef: Secret {name} is not available to this JwtSecret (it must exist, "
                f"hold the key, and allow it with the annotation {ALLOW_ANNOTATION})"
            )
        assert readable is not None  # a Secret that did not allow it gives no bytes
        return SecretKey(raw, allowed(readable, who, uid, HMAC_EXPORT_ANNOTATION))

    @api_errors
    def read_ca_bundle(self, namespace: str, ref: CaBundleRef) -> str:
        """The text a caBundleRef names; FetchError (keeping the last keys) when it cannot be used.

        A ConfigMap's text is returned unchecked (see trust.check_ca_bundle), and its errors say what is
        missing. A Secret needs no opt-in: a CA bundle is public, and its text only decides whom this
        JwtSecret's own fetch trusts, never published or shown. But it is checked here, so that every
        failure (absent, no such key, not UTF-8, too large, no PEM certificate) reads the same and tells
        nothing about the Secret."""
        found = self._object(ref.kind, namespace, ref.name).read()
        value = (found.get("data") or {}).get(ref.key) if found is not None else None
        if ref.kind == "Secret":
            try:
                return check_ca_bundle(base64.b64decode(value or "").decode(), ref)
            except (ValueError, FetchError):  # not base64, not UTF-8 (UnicodeDecodeError), no certificate
                raise FetchError(
                    f"spec.caBundleRef: Secret {ref.name} holds no PEM CA bundle under key {ref.key!r} (it "
                    f"must exist and hold UTF-8 PEM certificates there, at most {MAX_CA_BUNDLE_BYTES} bytes)"
                ) from None
        if found is None:
            raise FetchError(f"spec.caBundleRef: {ref.kind} {ref.name} not found")
        if value is None:
            raise FetchError(f"spec.caBundleRef.key: {ref.kind} {ref.name} has no key {ref.key!r}")
        return str(value)

    @api_errors
    def publish(
        self,
        kind: TargetKind,
        owner: Owner,
        name: str,
        data: Mapping[str, str],
        *,
        new: bool = False,
        known: Known | None = None,
    ) -> PublishResult:
        """Create or update our ConfigMap/Secret; never touch one we do not own (TargetConflictError). With
        `new` (nothing published yet), try the create first: one request instead of a read and a create;
        with `known` (what this process last wrote there, when the data changed since), replace it at
        once: one request instead of a read and a replace."""
        target = self._object(kind, owner.namespace, name)
        result = write(target, bodies.owned(kind, owner, name, data), attempts=5, absent=new, known=known)
        assert result != "deleted"  # bodies.owned never deletes
        return result

    @api_errors
    def publish_shared(
        self, kind: TargetKind, owner: Owner, name: str, part: Mapping[str, str] | None
    ) -> PublishResult | Literal["deleted"]:
        """Merge (or, with part None, remove) our part of a shared target, guarded by resourceVersion;
        the last contributor out deletes it."""
        target = self._object(kind, owner.namespace, name)
        return write(target, bodies.shared(kind, owner, name, part), attempts=8)

    @api_errors
    def delete_owned(self, kind: TargetKind, owner: Owner, name: str) -> bool:
        """Delete our old output (after a target change) if it is still ours; True if deleted."""
        return write(self._object(kind, owner.namespace, name), bodies.released(owner)) == "deleted"

    def read_published(self, namespace: str, name: str, *, via_jwtsecret: bool = False) -> dict[str, str]:
        """The data of a published ConfigMap, or of whatever a JwtSecret's status names as its target. A
        JwtSecret that contributes to a shared target gets its own part only (its `<name>.jwks.json` and
        `<name>.policy.json`, as jwks.json and policy.json): not the keys and policies of the others."""
        kind: str = "ConfigMap"
        part: str | None = None
        if via_jwtsecret:
            obj = self.http.request("GET", custom_path(GROUP, VERSION, PLURAL, namespace, name))
            target = (obj.get("status") or {}).get("target") or {}
            if not target.get("name"):
                raise LookupError(f"JwtSecret {namespace}/{name} has published nothing yet")
            part = name if target.get("shared") else None
            kind, name = str(target.get("kind")), str(target["name"])
        target_kind: TargetKind = "Secret" if kind == "Secret" else "ConfigMap"
        found = self._object(target_kind, namespace, name).read()
        if found is None:
            raise LookupError(f"{kind} {namespace}/{name} not found")
        data = bodies.decode(target_kind, found.get("data") or {})
        if part is None:
            return data
        jwks, policy = part_keys(part)
        if jwks not in data:
            raise LookupError(f"shared {kind} {namespace}/{name} holds no part of JwtSecret {part} (yet)")
        return {JWKS_KEY: data[jwks], **({POLICY_KEY: data[policy]} if policy in data else {})}

    @api_errors
    def patch_status(self, namespace: str, name: str, patch: Mapping[str, Any]) -> Mapping[str, Any]:
        """Merge-patch the JwtSecret's status subresource; the object as the patch left it."""
        where = custom_path(GROUP, VERSION, PLURAL, namespace, name, "status")
        return self.http.request("PATCH", where, {"status": dict(patch)}, content_type=MERGE_PATCH)

    @api_errors
    def set_finalizers(self, namespace: str, name: str, finalizers: list[str], resource_version: str) -> None:
        """Replace the JwtSecret's finalizers, guarded by the resourceVersion they were read at (409: the
        object changed meanwhile; the next watch event brings the new list and the caller retries)."""
        body = {"metadata": {"finalizers": finalizers, "resourceVersion": resource_version}}
        where = custom_path(GROUP, VERSION, PLURAL, namespace, name)
        self.http.request("PATCH", where, body, content_type=MERGE_PATCH)

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
            "message": printable(message, 1024),  # escaped: it may echo what a spec author wrote
            "source": {"component": self.component},
            "reportingComponent": self.component,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        self.http.request("POST", core_path("events", owner.namespace), body)

    @api_errors
    def write_output(self, ref: ObjectRef, mutate: Mutate) -> Outcome:
        """Bring one gateway output object to what `mutate` wants (create, or read-modify-write)."""
        if not ref.group and ref.kind in ("ConfigMap", "Secret"):
            kind: TargetKind = "Secret" if ref.kind == "Secret" else "ConfigMap"
            return write(self._object(kind, ref.namespace, ref.name), mutate, attempts=5)
        return write(CustomObject(self.http, ref), mutate, attempts=5)

    def _object(self, kind: TargetKind, namespace: str, name: str) -> TargetObject:
        return TargetObject(self.http, kind, namespace, name)
