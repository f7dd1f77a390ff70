"""Command line: `jwks-operator run` starts the operator; `jwks-operator verify` checks a token."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
from collections.abc import Sequence

import kopf

from . import __version__, logs
from .engine import Backoff, Engine
from .fetch import Fetcher, FetchSettings
from .freshness import RefreshPolicy
from .handlers import build_registry, build_settings
from .kube import Kube, load_api_client
from .leadership import Leadership
from .metrics import Metrics
from .verify import DirectoryVerifier, Verifier


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jwks-operator", description=__doc__)
    parser.add_argument("--version", action="version", version=f"jwks-operator {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the operator")
    run.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="watch only this namespace (repeatable; default: all namespaces)",
    )
    run.add_argument("--liveness", default=None, help="liveness endpoint, e.g. http://0.0.0.0:8080/healthz")
    run.add_argument("--min-interval", type=float, default=60.0, help="shortest refresh interval (s)")
    run.add_argument("--max-interval", type=float, default=86400.0, help="longest refresh interval (s)")
    run.add_argument(
        "--fallback-interval",
        type=float,
        default=3600.0,
        help="refresh interval when a provider sends no caching headers (s)",
    )
    run.add_argument(
        "--allow-private-networks",
        action="store_true",
        help="allow JWK URLs on private and loopback addresses (e.g. an in-cluster Keycloak)",
    )
    run.add_argument(
        "--fetch-timeout", type=float, default=10.0, help="connect and read timeout per fetch (s)"
    )
    run.add_argument("--fetch-deadline", type=float, default=30.0, help="total time allowed per fetch (s)")
    run.add_argument("--retry-base", type=float, default=5.0, help="first retry delay after a failure (s)")
    run.add_argument("--retry-max", type=float, default=600.0, help="longest retry delay (s)")
    run.add_argument(
        "--api-timeout", type=float, default=30.0, help="timeout of each API call the engine makes (s)"
    )
    run.add_argument(
        "--resync-interval",
        type=float,
        default=3600.0,
        help="re-read each published ConfigMap/Secret this often and repair it (s; 0: off)",
    )
    run.add_argument("--concurrency", type=int, default=8, help="parallel fetches and API writes")
    run.add_argument(
        "--metrics-port", type=int, default=0, help="serve Prometheus /metrics on this port (0: off)"
    )
    run.add_argument(
        "--peering",
        metavar="NAME",
        default=None,
        help="run with Kopf peering NAME (HA: one active replica); default standalone",
    )
    run.add_argument(
        "--priority",
        type=int,
        default=None,
        help="peering priority: the highest live one leads (default: random, so replicas never tie)",
    )
    run.add_argument(
        "--peering-lifetime",
        type=int,
        default=60,
        help="seconds a crashed leader is still presumed alive by its standbys (failover time)",
    )
    run.add_argument("--log-format", choices=("text", "json"), default="text", help="log line format")
    run.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    verify = sub.add_parser("verify", help="verify a JWT against published keys (exit 0 valid, 1 invalid)")
    verify.add_argument(
        "--token",
        required=True,
        help="the JWT, also as 'Bearer <jwt>' or 'Authorization: Bearer <jwt>'; - reads stdin",
    )
    where = verify.add_mutually_exclusive_group(required=True)
    where.add_argument("--dir", help="a mounted ConfigMap/Secret directory with jwks.json and policy.json")
    where.add_argument("--configmap", metavar="NS/NAME", help="a published ConfigMap")
    where.add_argument(
        "--jwtsecret", metavar="NS/NAME", help="a JwtSecret (its published ConfigMap or Secret)"
    )
    verify.add_argument("--leeway", type=float, default=30.0, help="clock skew allowed for exp/nbf/iat (s)")
    return parser


def verify_command(args: argparse.Namespace) -> int:
    """Print the claims (exit 0) or the reason (exit 1)."""
    token = sys.stdin.read() if args.token == "-" else args.token  # noqa: S105 - "-" means stdin
    if args.dir:
        result = DirectoryVerifier(args.dir, leeway=args.leeway).verify(token)
    else:
        kube = Kube(load_api_client("jwks-operator-verify"))
        ref = args.configmap or args.jwtsecret
        namespace, sep, name = ref.partition("/")
        if not sep or not namespace or not name:
            print(f"error: expected NS/NAME, got {ref!r}", file=sys.stderr)
            return 2
        try:
            data = kube.read_published(namespace, name, via_jwtsecret=bool(args.jwtsecret))
        except LookupError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        result = Verifier.from_data(data, leeway=args.leeway).verify(token)
    if result:
        print(json.dumps(dict(result.claims), indent=2, sort_keys=True))
        return 0
    print(f"invalid: {result.reason}")
    return 1


async def run_operator(args: argparse.Namespace, stop_flag: asyncio.Event | None = None) -> None:
    """Run Kopf and the refresh engine together until stopped."""
    kube = Kube(load_api_client(), timeout=args.api_timeout)
    policy = RefreshPolicy(args.min_interval, args.max_interval, args.fallback_interval)
    metrics = Metrics()
    if args.metrics_port:
        metrics.serve(args.metrics_port)
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

    def leadership_changed(leading: bool) -> None:
        metrics.leader.set(1 if leading else 0)
        if not leading:
            engine.stand_by()

    leadership.on_change = leadership_changed
    metrics.leader.set(1 if leadership.leading else 0)
    leadership.install()
    settings = build_settings(standalone=standalone)
    settings.peering.lifetime = args.peering_lifetime
    priority = args.priority if args.priority is not None else random.randint(1, 2**31 - 1)  # noqa: S311
    engine_task = asyncio.create_task(engine.run(), name="jwks-engine")
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
        engine_task.cancel()
        await asyncio.gather(engine_task, return_exceptions=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `jwks-operator` console script."""
    args = _parser().parse_args(argv)
    logs.setup(verbose=getattr(args, "verbose", False), fmt=getattr(args, "log_format", "text"))
    if args.command == "verify":
        return verify_command(args)
    asyncio.run(run_operator(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
