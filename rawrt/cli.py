"""Command line: ``python -m rawrt serve module:app``, ``python -m rawrt demo`` (uvicorn's shape) and
``python -m rawrt testee-client ws://HOST:PORT`` (the Autobahn client testee, :mod:`rawrt.testee`)."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import ssl
import sys
from collections.abc import Sequence

from .app import App
from .server import Server, serve
from .testee import add_arguments as add_testee_arguments
from .testee import run_from_args as run_testee

__all__ = ["main", "load_app", "run"]


def load_app(spec: str) -> App:
    """Import ``module:attribute`` and return the :class:`App` it names."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise SystemExit(f"expected module:app, got {spec!r}")
    sys.path.insert(0, ".")
    module = importlib.import_module(module_name)
    app = getattr(module, attr, None)
    if not isinstance(app, App):
        raise SystemExit(f"{spec} is not a rawrt.App (got {type(app).__name__})")
    return app


def _install_loop(choice: str) -> str:
    """Pick the event loop: ``auto`` takes uvloop when it is installed (the ``uvloop`` extra)."""
    if choice in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise SystemExit(
                    "--loop uvloop: uvloop is not installed (pip install 'rawrt[uvloop]')"
                ) from None
            return "asyncio"
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        return "uvloop"
    return "asyncio"


def run(
    app: App,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    loop: str = "auto",
    ssl_context: ssl.SSLContext | None = None,
    trace: bool = False,
    banner: str = "rawrt",
) -> None:
    """Serve ``app`` until SIGINT/SIGTERM (then shut down gracefully)."""
    loop_name = _install_loop(loop)
    scheme = "https" if ssl_context else "http"

    def ready(server: Server) -> None:
        shown = f"[{server.host}]" if ":" in server.host else server.host
        print(f"{banner} listening on {scheme}://{shown}:{server.port}/ (loop: {loop_name})", flush=True)

    try:
        asyncio.run(serve(app, host, port, ssl=ssl_context, trace=trace, ready=ready))
    except KeyboardInterrupt:
        pass


def _ssl_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not args.ssl_certfile:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.ssl_certfile, args.ssl_keyfile)
    return context


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to bind (default 8000; 0 picks one)")
    parser.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto")
    parser.add_argument("--ssl-certfile", help="PEM certificate chain: serve HTTPS/WSS")
    parser.add_argument("--ssl-keyfile", help="PEM private key (if not inside the certfile)")
    parser.add_argument("--trace", action="store_true", help="print every WebSocket frame (rawrt.trace)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--no-access-log", action="store_true", help="silence rawrt.access")


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``rawrt`` and ``python -m rawrt``."""
    parser = argparse.ArgumentParser(prog="rawrt", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_serve = sub.add_parser("serve", help="serve an App: rawrt serve module:app")
    p_serve.add_argument("app", help="module:attribute of a rawrt.App")
    _common(p_serve)
    p_demo = sub.add_parser("demo", help="the demo server (/hello, /echo, /inspect, /ws, ...)")
    _common(p_demo)
    p_testee = sub.add_parser(
        "testee-client", help="the Autobahn client testee: rawrt testee-client ws://HOST:PORT [--agent NAME]"
    )
    add_testee_arguments(p_testee)
    args = parser.parse_args(argv)

    if args.command == "testee-client":
        logging.basicConfig(
            level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s"
        )
        raise SystemExit(run_testee(args))

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.no_access_log:
        logging.getLogger("rawrt.access").setLevel(logging.WARNING)
    if args.trace:
        logging.getLogger("rawrt.trace").setLevel(logging.DEBUG)
    if args.command == "serve":
        app = load_app(args.app)
        banner = "rawrt"
    else:
        from .demo import create_app

        app = create_app()
        banner = "rawrt demo"
    run(
        app,
        args.host,
        args.port,
        loop=args.loop,
        ssl_context=_ssl_context(args),
        trace=args.trace,
        banner=banner,
    )
