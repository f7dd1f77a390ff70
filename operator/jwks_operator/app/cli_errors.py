"""What the command line tells a user who can fix the problem: one line (exit status 2), never a traceback.

CliError is `<what>: <what is wrong>; <what to do>`, e.g. `--metrics-port 9090: address already in use;
pick another port`. Here are the parser and flag value types that say so, the help's defaults and exit
statuses, and the translations of kubeconfig, API and socket failures into a CliError.
"""

from __future__ import annotations

import argparse
import errno
import json
import math
import os
import re
import socket
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import urllib3
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from jwks_operator.kube.adapter import load_api_client

EXIT_STATUS = """exit status:
  0  verify: the token is valid (its claims are printed); run: stopped
  1  verify: the token is invalid (the reason is printed)
  2  the command could not do its job: a bad flag value, a missing folder or object, an unreachable
     Kubernetes API, a port in use, or an internal error; one line on stderr says what is wrong and
     what to do"""
SEE_HELP = "see '{prog} --help'"
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


class CliError(Exception):
    """A problem the user can act on: `subject` (the flag and its value, or the file) is wrong."""

    def __init__(self, subject: str, problem: str, action: str) -> None:
        super().__init__(f"{subject}: {problem}; {action}" if subject else f"{problem}; {action}")


def one_line(text: object) -> str:
    return " ".join(str(text).split())


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the exit-status epilog as written; adds "(default: X)" where the help does not say it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "(default" in text or any(action.default is off for off in (None, False, argparse.SUPPRESS)):
            return text
        return text + (
            " (default: %(default)g)" if isinstance(action.default, float) else " (default: %(default)s)"
        )

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)  # keep --flag-names whole


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are CliErrors (one line, exit status 2) instead of usage + exit."""

    def error(self, message: str) -> NoReturn:
        see = SEE_HELP.format(prog=self.prog)
        found = re.fullmatch(r"argument (\S+): (.*)", message)
        if not found:  # e.g. "the following arguments are required: --token", "unrecognized arguments"
            raise CliError(" ".join(self.prog.split()[1:]), message, see)
        flag, problem = found[1].split("/")[-1], found[2]
        value, _, typed = problem.rpartition(": ")
        if value and "; " in typed:  # a value type's "<value>: <what is wrong>; <what to do>"
            raise CliError(f"{flag} {value}", *typed.split("; ", 1))
        raise CliError(flag, problem, see)


def cluster_flags(parser: argparse.ArgumentParser) -> None:
    """--kubeconfig and --context, as kubectl takes them."""
    parser.add_argument(
        "--kubeconfig",
        metavar="FILE",
        help="the kubeconfig file to use (default: $KUBECONFIG, else ~/.kube/config; in a pod, its "
        "ServiceAccount unless this or --context is given)",
    )
    parser.add_argument(
        "--context", metavar="NAME", help="the kubeconfig context to use (default: its current context)"
    )


def _value_type(name: str, parse: Callable[[str], Any]) -> Callable[[str], Any]:
    parse.__name__ = name  # argparse names the type in some messages
    return parse


def _bad(text: str, problem: str, action: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(f"{text}: {problem}; {action}")


def seconds(*, zero_means: str = "") -> Callable[[str], float]:
    """A positive number of seconds (or 0, when `zero_means` says what 0 does)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise _bad(text, "not a number of seconds", "give one like 60") from None
        if not math.isfinite(value) or value < 0 or (value == 0 and not zero_means):
            least = "0 or more" if zero_means else "more than 0"
            raise _bad(text, f"must be {least} seconds", "give one like 60")
        return value

    return _value_type("seconds", parse)


def integer(
    low: int | None = None, high: int | None = None, *, what: str = "a whole number"
) -> Callable[[str], int]:
    """A whole number within [low, high]."""
    span = f"{low} to {high}" if high is not None else f"{low} or more" if low is not None else ""
    action = f"give {what} of {span}" if span else f"give {what}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise _bad(text, f"not {what}", action) from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise _bad(text, f"must be {span}", action)
        return value

    return _value_type("integer", parse)


def port(text: str) -> int:
    """A TCP port, 0 meaning off."""
    return integer(0, 65535, what="a port number")(text)


def liveness_url(text: str) -> str:
    """Kopf's liveness endpoint: http://HOST:PORT/PATH."""
    action = "give one like http://0.0.0.0:8080/healthz"
    parts = urlsplit(text)
    try:
        valid_port = parts.port is None or parts.port > 0
    except ValueError:
        valid_port = False
    if parts.scheme != "http" or not parts.hostname or not parts.path.startswith("/") or not valid_port:
        raise _bad(text, "not an http://HOST:PORT/PATH URL", action)
    return text


def peering_name(text: str) -> str:
    """A KopfPeering object's name (a DNS subdomain)."""
    if len(text) > 253 or not _DNS_SUBDOMAIN.fullmatch(text):
        raise _bad(text, "not a valid object name", "use lower-case letters, digits, '-' and '.'")
    return text


def namespaced_name(text: str) -> tuple[str, str]:
    """NS/NAME as (namespace, name)."""
    namespace, sep, name = text.partition("/")
    if not sep or not namespace or not name or "/" in name:
        raise _bad(text, "not NS/NAME", "give the namespace and the name, e.g. default/api")
    return namespace, name


def api_client(
    component: str, connections: int = 10, *, kubeconfig: str | None = None, context: str | None = None
) -> client.ApiClient:
    """load_api_client, with a missing or broken kubeconfig, or an unknown context, as a CliError."""
    if context is not None:
        _check_context(kubeconfig, context)
    try:
        return load_api_client(component, connections, kubeconfig=kubeconfig, context=context)
    except (config.ConfigException, OSError, yaml.YAMLError) as exc:
        raise _config_error(exc, kubeconfig) from None


def _check_context(kubeconfig: str | None, context: str) -> None:
    """CliError unless the kubeconfig has this context (the client's own error does not say which exist)."""
    try:
        contexts, _ = config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    except (config.ConfigException, OSError, yaml.YAMLError) as exc:
        raise _config_error(exc, kubeconfig) from None
    names = [str(c.get("name")) for c in contexts or []]
    if context not in names:
        where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        has = f"it has {', '.join(names)}" if names else "it has none"
        raise CliError(f"--context {context}", f"no such context in {where} ({has})", "pick one of them")


def _config_error(exc: Exception, kubeconfig: str | None = None) -> CliError:
    value = os.environ.get("KUBECONFIG")
    where = f"KUBECONFIG={value}" if value else "~/.kube/config (KUBECONFIG is unset)"
    if kubeconfig is not None:
        where, value = f"--kubeconfig {kubeconfig}", kubeconfig
    paths = [Path(p).expanduser() for p in (value or "~/.kube/config").split(os.pathsep) if p]
    fix = "point KUBECONFIG at a kubeconfig file" if kubeconfig is None else "give a kubeconfig file"
    if not any(p.exists() for p in paths):
        if kubeconfig is not None:
            return CliError(where, "no such file", fix)
        pod = "in-cluster config failed" if "KUBERNETES_SERVICE_HOST" in os.environ else "not in a cluster"
        return CliError(where, f"no such file, and {pod}", f"{fix}, or run in a pod with a ServiceAccount")
    detail = exc.strerror if isinstance(exc, OSError) else one_line(exc)
    detail = str(detail).removeprefix("Invalid kube-config file. ")
    return CliError(where, f"not a usable kubeconfig: {detail}", f"fix it, or {fix}")


def api_error(
    subject: str, exc: ApiException | urllib3.exceptions.HTTPError, server: str, kind: str, namespace: str
) -> CliError:
    """A failed API call of a command (`subject`: its flag and NS/NAME, or what it asked for; a `kind`)."""
    if not isinstance(exc, ApiException):
        why = _unreachable(exc)
        up = "check that the cluster is up and that the kubeconfig names its address"
        return CliError(subject, f"cannot reach the Kubernetes API at {server} ({why})", up)
    try:
        status = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        status = {}
    status = status if isinstance(status, dict) else {}
    said = one_line(status.get("message") or "")
    if exc.status == 404 and (status.get("details") or {}).get("name"):
        listing = f"kubectl get {kind.lower()}s -n {namespace}"
        return CliError(subject, f"{kind} not found", f"check the namespace and the name ({listing})")
    if exc.status == 404:  # no such resource: the CRD is not installed
        return CliError(subject, f"{server} serves no {kind} API", "install the CRD, or use another cluster")
    if exc.status == 401:
        return CliError(
            subject, f"{server} rejected the credentials (HTTP 401)", "renew the kubeconfig's token"
        )
    http = f"HTTP {exc.status} {exc.reason}" + (f": {said}" if said else "")
    if exc.status == 403:
        return CliError(subject, f"forbidden ({http})", "ask for RBAC permission to get it")
    return CliError(subject, f"Kubernetes API error ({http})", "retry later, or ask the cluster's admin")


def _unreachable(exc: urllib3.exceptions.HTTPError) -> str:
    first: BaseException = getattr(exc, "reason", None) or exc
    cause: BaseException | None = first
    while cause is not None:  # e.g. NewConnectionError from ConnectionRefusedError
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror.lower()
        cause = cause.__cause__ or cause.__context__
    if isinstance(first, urllib3.exceptions.TimeoutError):
        return "timed out"
    return one_line(re.sub(r"^.*?: ", "", str(first)))


def bind_error(subject: str, exc: OSError) -> CliError:
    """A server socket that could not be bound (`subject` is the flag and its value)."""
    if exc.errno == errno.EADDRINUSE:
        return CliError(subject, "address already in use", "pick another port")
    if exc.errno == errno.EACCES:
        return CliError(subject, "permission denied", "pick a port above 1023, or run with the privilege")
    if exc.errno == errno.EADDRNOTAVAIL:
        return CliError(subject, "not an address of this machine", "listen on one of its own, or 0.0.0.0")
    return CliError(subject, one_line(exc.strerror or exc), "pick another address or port")


def check_bindable(subject: str, url: str) -> None:
    """Fail now, not inside Kopf, when the liveness endpoint's address cannot be listened on."""
    parts = urlsplit(url)
    try:
        found = socket.getaddrinfo(
            parts.hostname, parts.port or 80, 0, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise CliError(subject, f"unknown host ({exc.strerror})", "give an address of this machine") from None
    for family, kind, proto, _, address in found:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's servers do
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                raise bind_error(subject, exc) from None
