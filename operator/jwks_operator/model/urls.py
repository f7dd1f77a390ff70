"""JWK Set URLs (pure): as shown outside the request, and as compared with known providers.

`redacted` is the only form of a jwkUrl that may leave the fetch: status, policy.json, metrics labels and
logs. `identity` is what the shared-provider check compares: every spelling a server treats as the same
resource (case, default port, trailing dot, userinfo, query, fragment, dot segments...) gives one string.
"""

from __future__ import annotations

import contextlib
import posixpath
import re
from urllib.parse import unquote, urlsplit, urlunsplit

from jwks_operator.model.errors import SpecError

MAX_URL_LENGTH = 2048
URL_RE = re.compile(r"^https?://[^\s/?#]+[^\s]*$")  # the CRD's pattern for spec.jwkUrl
REDACTED = "REDACTED"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_USERINFO = re.compile(r"^([^:/?#]*://)[^/?#]*@")


def check_url(url: str, insecure: bool) -> None:
    """SpecError unless `url` is an absolute http(s) URL (http only when `insecure`), as the CRD checks."""
    if len(url) > MAX_URL_LENGTH or not URL_RE.match(url):
        raise SpecError("spec.jwkUrl", "must be an absolute http(s) URL")
    if not url.startswith("https://") and not insecure:
        raise SpecError(
            "spec.jwkUrl", "must use https:// (set spec.allowInsecureHttp: true to allow http://)"
        )


def redacted(url: str) -> str:
    """`url` without userinfo or fragment, each query value (a bare query word too) replaced by REDACTED."""
    try:
        scheme, netloc, path, query, _ = urlsplit(url)
    except ValueError:  # an unbalanced "[" (IPv6): keep what precedes the query, without userinfo
        return _USERINFO.sub(r"\1", re.split(r"[?#]", url, maxsplit=1)[0])
    words = (p.partition("=") for p in query.split("&")) if query else ()
    query = "&".join(f"{name}={REDACTED}" if eq else REDACTED for name, eq, _ in words)
    return urlunsplit((scheme, netloc.rpartition("@")[2], path, query, ""))


def identity(url: str) -> str | None:
    """`host[:port]/path` as the server most likely reads it, lowercased; None if it does not parse.

    Over-matching is the safe side (a URL taken for a shared provider's only needs an audience), so the
    scheme, userinfo, query, fragment, `;params`, repeated slashes and percent-escapes are dropped, dot
    segments resolved, the host IDNA-mapped (fullwidth letters and dots), and a default port removed.
    """
    try:
        parts = urlsplit(url.replace("\\", "/"))
        port = parts.port
    except ValueError:
        return None
    host = unquote(parts.hostname or "").rstrip(".")
    with contextlib.suppress(UnicodeError):  # fullwidth letters and dots, as the resolver will read them
        host = host.encode("idna").decode("ascii")
    host = host.lower().rstrip(".")
    if port is not None and port != _DEFAULT_PORTS.get(parts.scheme.lower()):
        host = f"{host}:{port}"
    path = re.sub(r";[^/]*", "", unquote(parts.path)).lower()
    return host + posixpath.normpath(re.sub(r"/+", "/", "/" + path)).rstrip("/")


def scrubbed(text: str, url: str) -> str:
    """`text` (an error message, say) with every spelling of `url`'s secrets replaced: the whole URL, its
    path and query (as HTTP libraries quote them), its userinfo and its query values."""
    safe = redacted(url)
    try:
        parts = urlsplit(url)
    except ValueError:
        return text.replace(url, safe)
    text = text.replace(url, safe)
    if parts.query:
        text = text.replace(f"{parts.path}?{parts.query}", f"{parts.path}?{urlsplit(safe).query}")
        for _, _, value in (p.partition("=") for p in parts.query.split("&")):
            if len(value) >= 4:  # a token, not a one-letter flag that could match anywhere
                text = text.replace(value, REDACTED)
    userinfo = parts.netloc.rpartition("@")[0]
    return text.replace(userinfo, REDACTED) if userinfo else text
