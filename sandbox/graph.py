"""Microsoft Graph stand-in: the mail, subscription and delta slice of Graph v1.0 the bot uses.

Serves `<base_url>/v1.0/...` for msgraph-sdk and a JSON control API under `<base_url>/_control/` for tests and the
demo. `docs/stand-ins-graph.md` lists the Microsoft behaviour copied and what is not modelled.
Run standalone with `python -m sandbox.graph --port N --mailbox pool@example.com`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import signal
import ssl
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import jwt
from aiohttp import web

from sandbox.graph_faults import FaultInjector, FaultRule
from sandbox.graph_routes import GraphRoutes, RecordedRequest
from sandbox.graph_state import GraphState
from sandbox.graph_subscriptions import Notifier

log = logging.getLogger(__name__)

TokenValidator = Callable[[str], bool]


class GraphStandIn(GraphState):
    """A local Graph v1.0 server for mail, subscriptions and delta (see module docstring): its state and Python
    control API (:mod:`sandbox.graph_state`), HTTP routes (:mod:`sandbox.graph_routes`) and fault rules
    (:mod:`sandbox.graph_faults`)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        token_validator: TokenValidator | None = None,
        mailboxes: Iterable[str] = (),
        *,
        seed: int = 0,
        tenant_id: str = "f00dfeed-0000-4000-8000-000000000001",
        max_concurrency: int = 4,
        throttle_retry_after: int = 1,
        max_subscription_minutes: int = 10080,
        notification_retry_delays: Sequence[float] = (0.5, 1.0, 2.0),
        notification_timeout_s: float = 3.0,
        notification_ssl_context: ssl.SSLContext | None = None,
        expiry_check_interval_s: float = 0.5,
        latency_s: float = 0.0,
    ) -> None:
        """``latency_s`` delays every Graph API answer, standing in for a real network round trip."""
        super().__init__(
            Notifier(notification_ssl_context, tuple(notification_retry_delays), notification_timeout_s),
            tenant_id=tenant_id,
            max_subscription_minutes=max_subscription_minutes,
            expiry_check_interval_s=expiry_check_interval_s,
        )
        self.host = host
        self.latency_s = latency_s
        self.port = port
        self._ssl_context = ssl_context
        self.random = random.Random(seed)
        """Seeded: decides the fault rules' rates and the bytes of attachments the control API makes up."""
        self.faults = FaultInjector(self.random)
        self.request_log: list[RecordedRequest] = []
        self.routes = GraphRoutes(self, token_validator, max_concurrency, throttle_retry_after)
        self._expiry_task: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None
        for address in mailboxes:
            self.add_mailbox(address)

    # ---------------------------------------------------------------- lifecycle

    @property
    def base_url(self) -> str:
        """Scheme, host and bound port; msgraph-sdk's request adapter wants `base_url + "/v1.0"`."""
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self.host}:{self.port}"

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self.notifier.start()
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_route("*", "/v1.0/{tail:.*}", self.routes.graph_entry)
        self.routes.add_control_routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self._ssl_context)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self._expiry_task = asyncio.create_task(self._expire_subscriptions_forever())
        log.info("Graph stand-in listening on %s", self.base_url)

    async def stop(self) -> None:
        tasks = [*self._tasks, *([self._expiry_task] if self._expiry_task else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.notifier.close()

    # ---------------------------------------------------------------- faults and recorded requests

    def add_fault(self, kind: str, **options: Any) -> FaultRule:
        """A fault rule for the Graph requests: ``kind`` and ``options`` as for :meth:`FaultInjector.add`."""
        return self.faults.add(kind, **options)

    def clear_faults(self) -> None:
        self.faults.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        return list(self.request_log)

    def clear_requests(self) -> None:
        self.request_log.clear()

    def reset(self) -> None:
        """Empty every mailbox and forget subscriptions, faults, tokens, requests and deliveries."""
        super().reset()
        self.faults.clear()
        self.request_log.clear()


def _verifies(token: str, key: Any, audience: str | None, issuer: str | None) -> bool:
    try:
        jwt.decode(
            token,
            key,
            algorithms=["RS256"],
            audience=audience,
            issuer=issuer,
            options={"verify_aud": audience is not None, "verify_iss": issuer is not None},
        )
    except jwt.PyJWTError:
        return False
    return True


def rs256_token_validator(
    public_key_pem: bytes, audience: str | None = None, issuer: str | None = None
) -> TokenValidator:
    """A validator for tokens signed by the identity stand-in's key (signature, expiry, optional aud/iss)."""
    return lambda token: _verifies(token, public_key_pem, audience, issuer)


def jwks_token_validator(
    jwks_url: str, audience: str | None = None, issuer: str | None = None, ssl_context: ssl.SSLContext | None = None
) -> TokenValidator:
    """Like `rs256_token_validator`, with the key looked up by `kid` in a JWKS (blocking fetch, cached)."""
    client = jwt.PyJWKClient(jwks_url, ssl_context=ssl_context)

    def validate(token: str) -> bool:
        try:
            key = client.get_signing_key_from_jwt(token).key
        except jwt.PyJWTError:
            return False
        return _verifies(token, key, audience, issuer)

    return validate


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--mailbox", action="append", default=[], help="mailbox address (repeatable)")
    parser.add_argument("--seed", type=int, default=0, help="seed for fault injection")
    parser.add_argument("--tls-cert", help="PEM certificate to serve https")
    parser.add_argument("--tls-key", help="PEM private key for --tls-cert")
    parser.add_argument("--notification-ca", help="CA bundle to trust for https notification URLs")
    parser.add_argument("--token-jwks-url", help="validate bearer tokens against this JWKS")
    parser.add_argument("--token-jwks-ca", help="CA bundle to trust for an https --token-jwks-url")
    parser.add_argument("--token-public-key", help="validate bearer tokens with this RS256 public key (PEM)")
    parser.add_argument("--token-audience", help="required aud claim")
    parser.add_argument("--token-issuer", help="required iss claim")
    return parser.parse_args(argv)


def _validator_from_args(args: argparse.Namespace) -> TokenValidator | None:
    if args.token_jwks_url:
        ca = ssl.create_default_context(cafile=args.token_jwks_ca) if args.token_jwks_ca else None
        return jwks_token_validator(args.token_jwks_url, args.token_audience, args.token_issuer, ca)
    if args.token_public_key:
        with open(args.token_public_key, "rb") as pem:
            return rs256_token_validator(pem.read(), args.token_audience, args.token_issuer)
    return None


async def _serve(args: argparse.Namespace) -> None:
    server_ssl = None
    if args.tls_cert:
        server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ssl.load_cert_chain(args.tls_cert, args.tls_key)
    notification_ssl = ssl.create_default_context(cafile=args.notification_ca) if args.notification_ca else None
    stand_in = GraphStandIn(
        args.host,
        args.port,
        server_ssl,
        _validator_from_args(args),
        args.mailbox,
        seed=args.seed,
        notification_ssl_context=notification_ssl,
    )
    await stand_in.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(f"GRAPH_STAND_IN_READY {stand_in.base_url}", flush=True)
    for box in stand_in.mailboxes:
        print(f"MAILBOX {box.address} {box.user_id}", flush=True)
    await stop.wait()
    await stand_in.stop()


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(_serve(_parse_args(argv)))


if __name__ == "__main__":
    main()
