"""CA bundles for JWKS fetches: the PEM a caBundleRef names must hold certificates and be at most
MAX_CA_BUNDLE_BYTES, and the verifying SSL contexts built from bundles, in memory (no temporary file), in
an LRU cache bounded by bytes as well as by count."""

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
# An SSLContext holds about 8 bytes of memory per byte of the PEM it was loaded from (measured: 64 bundles
# of 1 MB took the fetch path from 45 to 514 MiB). A bundle is capped at twice a public trust store
# (certifi's: 230 KB), and the cache at 2 MiB of PEM (about 16 MiB of contexts).
MAX_CA_BUNDLE_BYTES = 256 * 1024
MAX_CACHED_BYTES = 2 * 1024 * 1024


def check_ca_bundle(pem: str, ref: CaBundleRef) -> str:
    """The bundle unchanged when it is at most MAX_CA_BUNDLE_BYTES and holds at least one PEM certificate;
    else FetchError naming `ref` (the last published keys stay). The size is checked first: a bundle
    over it is not parsed."""
    size = len(pem.encode())
    if size > MAX_CA_BUNDLE_BYTES:
        raise FetchError(
            f"spec.caBundleRef: {ref.kind} {ref.name} key {ref.key!r} holds {size} bytes, over the "
            f"{MAX_CA_BUNDLE_BYTES}-byte limit of a CA bundle"
        )
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
    caBundleRef's PEM is loaded from memory (`cadata`), so tenants' bundles leave no file behind. Bundles
    are tenant-controlled, so at most `size` contexts are kept, holding at most `max_bytes` of PEM between
    them (least recently used out). The fetcher drops a custom-CA connection pool when its fetch ends, so
    a context the cache let go is freed once no fetch uses it.
    """

    def __init__(self, size: int = MAX_CONTEXTS, max_bytes: int = MAX_CACHED_BYTES) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self._contexts: OrderedDict[tuple[str, ...], tuple[ssl.SSLContext, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._contexts)

    def cached(self) -> list[tuple[str, ...]]:
        """The keys of the cached contexts, least recently used first."""
        with self._lock:
            return list(self._contexts)

    def cached_bytes(self) -> int:
        """The PEM bytes the cached contexts were loaded from."""
        with self._lock:
            return self._bytes

    def for_pem(self, pem: str) -> ssl.SSLContext:
        """The context trusting exactly the certificates of a PEM bundle (ssl.SSLError if it holds
        none that OpenSSL can load)."""
        data = pem.encode()
        key = ("pem", hashlib.sha256(data).hexdigest())
        return self._get(key, len(data), lambda context: context.load_verify_locations(cadata=pem))

    def for_file(self, path: str) -> ssl.SSLContext:
        """The context trusting a CA bundle file (the system's, REQUESTS_CA_BUNDLE), reloaded when the
        file changes."""
        stat = os.stat(path)
        key = ("file", path, str(stat.st_mtime_ns))
        return self._get(key, stat.st_size, lambda context: context.load_verify_locations(cafile=path))

    def _get(self, key: tuple[str, ...], size: int, load: Callable[[ssl.SSLContext], None]) -> ssl.SSLContext:
        with self._lock:
            found = self._contexts.get(key)
            if found is not None:
                self._contexts.move_to_end(key)
                return found[0]
        context = urllib3.util.ssl_.create_urllib3_context()
        load(context)  # outside the lock: another thread's bundle need not wait for this one
        with self._lock:
            if key[0] == "file":  # a changed file replaces its previous version
                for old in [k for k in self._contexts if k[:2] == key[:2] and k != key]:
                    self._bytes -= self._contexts.pop(old)[1]
            if key not in self._contexts:
                self._contexts[key] = (context, size)
                self._bytes += size
            self._contexts.move_to_end(key)
            context = self._contexts[key][0]
            while len(self._contexts) > 1 and (
                len(self._contexts) > self.size or self._bytes > self.max_bytes
            ):  # the least recently used out; the one just asked for stays
                self._bytes -= self._contexts.popitem(last=False)[1][1]
            return context

    def clear(self) -> None:
        with self._lock:
            self._contexts.clear()
            self._bytes = 0


CONTEXTS = TrustContexts()
