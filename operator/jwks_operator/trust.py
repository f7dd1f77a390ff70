"""CA bundles for JWKS fetches (pure): the PEM a caBundleRef names must hold certificates."""

from __future__ import annotations

from cryptography import x509

from .errors import FetchError
from .spec import CaBundleRef


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
