"""Command line: `jwks-operator run` starts the operator; `jwks-operator verify` checks a token."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import sys
from collections.abc import Sequence
from typing import Any

import kopf
import urllib3
from kubernetes.client.exceptions import ApiException

from jwks_operator import __version__
from jwks_operator.app.cli_errors import (
    EXIT_STATUS,
    CliError,
    HelpFormatter,
    Parser,
    api_client,
    api_error,
    bind_error,
    check_bindable,
    cluster_flags,
    integer,
    liveness_url,
    namespaced_name,
    one_line,
    peering_name,
    port,
    seconds,
)
from jwks_operator.app.handlers import build_registry, build_settings
from jwks_operator.app.owned import OwnedWatch
from jwks_operator.app.preflight import require_crds
from jwks_operator.engine.engine import Backoff, Engine
from jwks_operator.fetch.fetcher import Fetcher, FetchSettings
from jwks_operator.kube.adapter import Kube
from jwks_operator.model.freshness import RefreshPolicy
from jwks_operator.runtime import logs
from jwks_operator.runtime.leadership import Leadership
from jwks_operator.runtime.metrics import Metrics
from jwks_operator.verify.profiles import PROFILES, SEED, Profile
from jwks_operator.verify.verifier import DirectoryVerifier, MissingPolicyError, PublishedDataError, Verifier

DIR_HINT = "give the folder where the published ConfigMap or Secret is mounted"
NO_POLICY_HINT = "or pass --no-policy to check signatures and times only"
# The run flags in seconds: (flag, default, what 0 means or "" when 0 is refused, help).
RUN_SECONDS: tuple[tuple[str, float, str, str], ...] = (
    (
        "--min-interval",
        60.0,
        "",
        "shortest refresh interval (s): a provider's max-age or Expires below it is held to it (max-age=4 "
        "with the default: refreshed every 60 s), and no-cache answers are refetched at it; a floor for "
        "every JwtSecret: spec.refresh.minInterval may only raise it",
    ),
    (
        "--max-interval",
        86400.0,
        "",
        "longest refresh interval (s): a longer max-age or Expires is cut to it; at least --min-interval; "
        "a JwtSecret's spec.refresh.maxInterval replaces it",
    ),
    (
        "--fallback-interval",
        3600.0,
        "",
        "refresh interval when a provider sends no caching headers (s), held between --min-interval and "
        "--max-interval; a JwtSecret's spec.refresh.fallbackInterval replaces it",
    ),
    (
        "--fetch-timeout",
        10.0,
        "",
        "connect timeout, and read timeout between bytes, of each fetch (s); the whole fetch is also held "
        "to --fetch-deadline",
    ),
    ("--fetch-deadline", 30.0, "", "total time allowed per fetch (s)"),
    (
        "--retry-base",
        5.0,
        "",
        "first retry delay after a failure (s), doubled after each further one up to --retry-max; each "
        "delay varies by 20%% either way, and a server's longer Retry-After is honoured",
    ),
    ("--retry-max", 600.0, "", "longest retry delay (s); at least --retry-base"),
    ("--api-timeout", 30.0, "", "timeout of each API call the engine makes (s)"),
    (
        "--resync-interval",
        3600.0,
        "off",
        "re-read each published ConfigMap/Secret this often and repair it (s; 0: off)",
    ),
)


def _parser() -> argparse.ArgumentParser:
    common: dict[str, Any] = {"formatter_class": HelpFormatter, "epilog": EXIT_STATUS}
    parser = Parser(prog="jwks-operator", description=__doc__, **common)
    parser.add_argument("--version", action="version", version=f"jwks-operator {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the operator", description="Run the operator.", **common)
    cluster_flags(run)
    run.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="watch only this namespace (repeatable) (default: all namespaces)",
    )
    run.add_argument(
        "--liveness",
        type=liveness_url,
        help="serve Kopf's liveness probe at this URL, e.g. http://0.0.0.0:8080/healthz (default: none)",
    )
    for flag, default, zero_means, text in RUN_SECONDS:
        run.add_argument(flag, type=seconds(zero_means=zero_means), default=default, help=text)
    run.add_argument(
        "--allow-private-networks",
        action="store_true",
        help="allow JWK URLs on private and loopback addresses (e.g. an in-cluster Keycloak) "
        "(default: public addresses only)",
    )
    run.add_argument(
        "--concurrency",
        type=integer(1),
        default=8,
        help="parallel fetches, and parallel API calls (outputs first, then status, then events); "
        "at most 4x this many JwtSecrets reconciled at once, besides those a fetched JWK Set changed",
    )
    run.add_argument(
        "--metrics-port", type=port, default=0, help="serve Prometheus /metrics on this port (0: off)"
    )
    run.add_argument(
        "--peering",
        metavar="NAME",
        type=peering_name,
        help="run with Kopf peering NAME (HA: one active replica) (default: standalone)",
    )
    run.add_argument(
        "--priority",
        type=integer(),
        help="peering priority: the highest live one leads (default: random, so replicas never tie)",
    )
    run.add_argument(
        "--peering-lifetime",
        type=integer(1),
        default=60,
        help="seconds a crashed leader is still presumed alive by its standbys (failover time)",
    )
    run.add_argument("--log-format", choices=("text", "json"), default="text", help="log line format")
    run.add_argument("-v", "--verbose", action="store_true", help="debug logging (default: info)")
    verify = sub.add_parser(
        "verify",
        help="verify a JWT against published keys (exit 0 valid, 1 invalid, 2 error)",
        description="Verify a JWT against what jwks-operator published.",
        **common,
    )
    cluster_flags(verify)
    verify.add_argument(
        "--token",
        required=True,
        help="the JWT, also as 'Bearer <jwt>' or 'Authorization: Bearer <jwt>'; - reads stdin",
    )
    where = verify.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--dir",
        help="a mounted ConfigMap/Secret directory with jwks.json and policy.json (mount the whole object)",
    )
    where.add_argument("--configmap", metavar="NS/NAME", type=namespaced_name, help="a published ConfigMap")
    where.add_argument(
        "--jwtsecret", metavar="NS/NAME", type=namespaced_name, help="a JwtSecret (its output)"
    )
    verify.add_argument(
        "--leeway",
        type=seconds(zero_means="none"),
        default=None,
        help="clock skew allowed for exp/nbf/iat (s; default the profile's: 30, envoy 60, spacecloud 0)",
    )
    verify.add_argument(
        "--as",
        dest="profile",
        choices=list(PROFILES),
        default=SEED.name,
        help="that gateway's rules (leeway, iss lists, crit, iat, keys and algorithms; docs/data-plane.md)",
    )
    verify.add_argument(
        "--no-policy",
        action="store_true",
        help="accept keys published without policy.json (a bare jwks.json), checking only signatures and "
        "exp/nbf/iat: any audience and issuer, any algorithm the keys fit (never none); a policy.json that "
        "is there still applies (default: a missing policy.json is an error, exit status 2)",
    )
    return parser


def verify_command(args: argparse.Namespace) -> int:
    """Print the claims (exit 0) or the reason (exit 1); a CliError when it cannot decide."""
    logging.getLogger("urllib3").setLevel(logging.ERROR)  # its retry warnings: the CliError says it
    token = sys.stdin.read() if args.token == "-" else args.token  # noqa: S105 - "-" means stdin
    profile, where = PROFILES[args.profile], args.dir
    verifier = (
        _directory(where, args.leeway, not args.no_policy, profile) if where else _published(args, profile)
    )
    result = verifier.verify(token)
    if result:
        print(json.dumps(dict(result.claims), indent=2, sort_keys=True))
        return 0
    print(f"invalid: {result.reason}")
    return 1


def _directory(path: str, leeway: float | None, require_policy: bool, profile: Profile) -> DirectoryVerifier:
    subject = f"--dir {path}"
    if not os.path.isdir(path):
        raise CliError(subject, "not a directory" if os.path.exists(path) else "no such directory", DIR_HINT)
    verifier = DirectoryVerifier(path, leeway=leeway, require_policy=require_policy, profile=profile)
    try:
        verifier.reload_if_changed()
    except MissingPolicyError as exc:
        mount = f"mount the whole ConfigMap or Secret (not only its jwks.json), {NO_POLICY_HINT}"
        raise CliError(subject, exc.problem, mount) from None
    except PublishedDataError as exc:
        raise CliError(subject, str(exc), DIR_HINT) from None
    except OSError as exc:
        raise CliError(subject, one_line(exc.strerror or exc), DIR_HINT) from None
    return verifier


def _published(args: argparse.Namespace, profile: Profile) -> Verifier:
    kind = "JwtSecret" if args.jwtsecret else "ConfigMap"
    namespace, name = args.jwtsecret or args.configmap
    subject = f"--{kind.lower()} {namespace}/{name}"
    api = api_client("jwks-operator-verify", kubeconfig=args.kubeconfig, context=args.context)
    try:
        data = Kube(api).read_published(namespace, name, via_jwtsecret=bool(args.jwtsecret))
    except LookupError as exc:  # the ConfigMap, or nothing a JwtSecret published (yet)
        if not args.jwtsecret:
            look = f"check the namespace and the name (kubectl get configmaps -n {namespace})"
            raise CliError(subject, "ConfigMap not found", look) from None
        look = f"see kubectl describe jwtsecret -n {namespace} {name}"
        raise CliError(subject, one_line(exc), look) from None
    except (ApiException, urllib3.exceptions.HTTPError) as exc:
        raise api_error(subject, exc, api.configuration.host, kind, namespace) from None
    try:
        return Verifier.from_data(
            data, leeway=args.leeway, require_policy=not args.no_policy, profile=profile
        )
    except MissingPolicyError as exc:
        look = f"see the JwtSecret's status (the operator publishes {exc.entry}), {NO_POLICY_HINT}"
        raise CliError(subject, f"unusable published data: {exc.problem}", look) from None
    except PublishedDataError as exc:
        raise CliError(subject, f"unusable published data: {exc}", "see the JwtSecret's status") from None


def run_command(args: argparse.Namespace) -> int:
    """Check what the operator needs (flags, kubeconfig, ports, CRDs) before starting it: a CliError if
    not."""
    for low, high in (("min_interval", "max_interval"), ("retry_base", "retry_max")):
        if getattr(args, high) < getattr(args, low):
            flag, other = (f"--{n.replace('_', '-')}" for n in (high, low))
            problem = f"below {other} {getattr(args, low):g}"
            raise CliError(f"{flag} {getattr(args, high):g}", problem, f"raise {flag} or lower {other}")
    api = api_client("jwks-operator", args.concurrency + 2, kubeconfig=args.kubeconfig, context=args.context)
    kube = Kube(api, timeout=args.api_timeout)
    metrics = Metrics()
    if args.metrics_port:
        try:
            metrics.serve(args.metrics_port)
        except OSError as exc:
            raise bind_error(f"--metrics-port {args.metrics_port}", exc) from None
    if args.liveness:
        check_bindable(f"--liveness {args.liveness}", args.liveness)
    server = kube.http.api_client.configuration.host
    require_crds(kube.http, server, args.peering, clusterwide=not args.namespace)
    with logs.off_the_loop():
        asyncio.run(run_operator(args, kube, metrics))
    return 0


async def run_operator(
    args: argparse.Namespace, kube: Kube, metrics: Metrics, stop_flag: asyncio.Event | None = None
) -> None:
    """Run Kopf and the refresh engine together until stopped."""
    policy = RefreshPolicy(args.min_interval, args.max_interval, args.fallback_interval)
    standalone = args.peering is None
    leadership = Leadership(standalone=standalone)
    engine = Engine(
        kube,
        Fetcher(
            FetchSettings(
                connect_timeout=args.fetch_timeout,
                read_timeout=args.fetch_timeout,
                deadline=args.fetch_deadline,
                allow_private_networks=args.allow_private_networks,
            )
        ),
        metrics=metrics,
        retry=Backoff(args.retry_base, args.retry_max),
        policy=policy,
        concurrency=args.concurrency,
        leading=lambda: leadership.leading,
        resync_interval=args.resync_interval,
    )

    owned = OwnedWatch(kube.http.api_client, args.namespace, engine.drift, asyncio.get_running_loop())

    def leadership_changed(leading: bool) -> None:
        metrics.leader.set(1 if leading else 0)
        if leading:
            owned.start()
        else:
            owned.stop()
            engine.stand_by()

    leadership.on_change = leadership_changed
    metrics.leader.set(1 if leadership.leading else 0)
    leadership.install()
    settings = build_settings(standalone=standalone)
    settings.peering.lifetime = args.peering_lifetime
    priority = args.priority if args.priority is not None else random.randint(1, 2**31 - 1)  # noqa: S311
    engine_task = asyncio.create_task(engine.run(), name="jwks-engine")
    if leadership.leading:
        owned.start()
    try:
        await kopf.operator(
            registry=build_registry(engine),
            settings=settings,
            clusterwide=not args.namespace,
            namespaces=args.namespace,
            standalone=standalone,
            peering_name=args.peering,
            priority=None if standalone else priority,
            liveness_endpoint=args.liveness,
            stop_flag=stop_flag,
        )
    finally:
        leadership.uninstall()
        await asyncio.to_thread(owned.stop, join=True)
        engine_task.cancel()
        await asyncio.gather(engine_task, return_exceptions=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `jwks-operator` console script: the exit status (see EXIT_STATUS)."""
    try:
        try:
            args = _parser().parse_args(argv)
        except SystemExit as exc:  # --help, --version
            return exc.code if isinstance(exc.code, int) else 0
        logs.setup(verbose=getattr(args, "verbose", False), fmt=getattr(args, "log_format", "text"))
        return verify_command(args) if args.command == "verify" else run_command(args)
    except CliError as exc:
        print(f"jwks-operator: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("jwks-operator: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: its traceback, then one line (its message withheld, as in logs.py)
        logging.getLogger(__name__).exception("unexpected error")
        summary = f"internal error: {type(exc).__name__}; please report it with the traceback above"
        print(f"jwks-operator: {summary}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
