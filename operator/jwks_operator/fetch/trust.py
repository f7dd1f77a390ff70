"""CA bundles for JWKS fetches: the PEM a caBundleRef names must hold certificates, and the verifying
SSL contexts built from bundles, in memory (no temporary file), in a bounded LRU cache."""

from __future__ import annotations

import hashlib
import os
import ssl
import threading
from collections import OrderedDict
from collections.abc import Callable

import urllib3.util.ssl_
from cryptography import x509

from jwks_operator.model.errors import FetchError
from jwks_operator.resource.spec import CaBundleRef

MAX_CONTEXTS = 64


def check_ca_bundle(pem: str, ref: CaBundleRef) -> str:
    """The bundle unchanged when it holds at least one PEM certificate; else FetchError naming `ref`
    (the last published keys stay)."""
    try:
        x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        raise FetchError(
            f"spec.caBundleRef: {ref.kind} {ref.name} key {ref.key!r} holds no PEM certificate"
        ) from None
    return pem


class TrustContexts:
    """Verifying SSLContexts, one per distinct bundle, shared by every connection and thread.

    Parsing a trust store costs about 20 ms of CPU for a container's (certifi's 140-odd roots), and
    requests would parse it again on every new TLS connection; here each bundle is parsed once. A
    caBundleRef's PEM is loaded from memory (`cadata`), so tenants' bundles leave no file behind, and
    at most `size` contexts are kept (least recently used out): bundles are tenant-controlled.
    """

    def __init__(self, size: int = MAX_CONTEXTS) -> None:
        self.size = size
        self._contexts: OrderedDict[tuple[str, ...], ssl.SSLContext] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._contexts)

    def cached(self) -> list[tuple[str, ...]]:
        """The keys of the cached contexts, least recently used first."""
        with self._lock:
            return list(self._contexts)

    def for_pem(self, pem: str) -> ssl.SSLContext:
        """The context trusting exactly the certificates of a PEM bundle (ssl.SSLError if it holds
        none that OpenSSL can load)."""
        key = ("pem", hashlib.sha256(pem.encode()).hexdigest())
        return self._get(key, lambda context: context.load_verify_locations(cadata=pem))

    def for_file(self, path: str) -> ssl.SSLContext:
        """The context trusting a CA bundle file (the system's, REQUESTS_CA_BUNDLE), reloaded when the
        file changes."""
        key = ("file", path, str(os.stat(path).st_mtime_ns))
        return self._get(key, lambda context: context.load_verify_locations(cafile=path))

    def _get(self, key: tuple[str, ...], load: Callable[[ssl.SSLContext], None]) -> ssl.SSLContext:
        with self._lock:
            context = self._contexts.get(key)
            if context is not None:
                self._contexts.move_to_end(key)
                return context
        context = urllib3.util.ssl_.create_urllib3_context()
        load(context)  # outside the lock: another thread's bundle need not wait for this one
        with self._lock:
            if key[0] == "file":  # a changed file replaces its previous version
                for old in [k for k in self._contexts if k[:2] == key[:2] and k != key]:
                    del self._contexts[old]
            context = self._contexts.setdefault(key, context)
            self._contexts.move_to_end(key)
            while len(self._contexts) > self.size:
                self._contexts.popitem(last=False)
            return context

    def clear(self) -> None:
        with self._lock:
            self._contexts.clear()


CONTEXTS = TrustContexts()
