"""Command line: ``python -m rawrt serve module:app``, ``python -m rawrt demo`` (uvicorn's shape),
``python -m rawrt testee-client ws://HOST:PORT`` (the Autobahn client testee, :mod:`rawrt.testee`) and
``python -m rawrt compare [URL]`` (the four techniques measured side by side, :mod:`rawrt.compare`) and
``python -m rawrt experiment NAME [URL]`` (the protocol lab's experiments, :mod:`rawrt.experiment`).

Errors: an ordinary mistake (a module or attribute that does not exist, a bad flag, a port in use, a missing
certificate) is one line on stderr and exit status 2, as argparse does for its own; no traceback, since the
fix is in the command, not in code. An exception raised by the user's module while it is imported is the
user's code failing: it keeps its traceback (as uvicorn shows it) and the exit status is 1.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import importlib
import importlib.metadata
import importlib.util
import os
import socket
import ssl
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from . import __version__
from .app import App
from .config import Config, ConfigError
from .config import add_arguments as add_server_arguments
from .hub import Hub
from .hub.backends import ENV_VAR as HUB_ENV_VAR
from .hub.backends import MemoryBackend, without_password
from .server import Server, serve
from .testee import add_arguments as add_testee_arguments
from .testee import run_from_args as run_testee
from .workers import ENV_INDEX as WORKER_INDEX
from .workers import ENV_SOCKET as WORKER_SOCKET
from .workers import Supervisor, WorkerExit, report_ready, worker_socket

__all__ = ["main", "load_app", "run", "version"]

#: The bind errors that mean "this address cannot be listened on" (a mistake in --host/--port/--uds), as
#: opposed to an OSError from the app's own startup hooks, which keeps its traceback.
_BIND_ERRNOS = frozenset(
    {
        errno.EADDRINUSE,
        errno.EADDRNOTAVAIL,
        errno.EACCES,
        errno.EPERM,
        errno.ENOENT,
        errno.ENOTDIR,
        errno.EAFNOSUPPORT,
    }
)


def version() -> str:
    """rawrt's version: the installed distribution's, else the source tree's ``rawrt.__version__``."""
    try:
        return importlib.metadata.version("rawrt")
    except importlib.metadata.PackageNotFoundError:
        return __version__


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors on one line (the usage itself is one ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def load_app(spec: str) -> App:
    """Import ``module:attribute`` (the attribute may be dotted) and return the :class:`App` it names.

    Raises:
        ConfigError: ``spec`` has no colon, the module or the attribute does not exist, or it is not an App.
        Exception: whatever the module itself raises while it is imported (its own bug, not the command's).
    """
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"expected MODULE:ATTRIBUTE (e.g. myapp:app), got {spec!r}")
    if "." not in sys.path and "" not in sys.path:
        sys.path.insert(0, ".")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only the module the command named (or a package on its path) is the command's mistake; a module
        # that the user's code imports and that is missing is the user's code failing.
        if exc.name is None or not (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise
        raise ConfigError(f"could not import module {module_name!r}: no module named {exc.name!r}") from None
    value: object = module
    for part in attr.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise ConfigError(f"attribute {attr!r} not found in module {module_name!r}") from None
    if not isinstance(value, App):
        raise ConfigError(f"{spec} is not a rawrt.App (got {type(value).__name__})")
    return value


def _install_loop(choice: str) -> str:
    """Pick the event loop: ``auto`` takes uvloop when it is installed (the ``uvloop`` extra)."""
    if choice in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise ConfigError(
                    "--loop uvloop: uvloop is not installed (pip install '.[uvloop]' in rawrt's checkout)"
                ) from None
            return "asyncio"
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        return "uvloop"
    return "asyncio"


def _bind_error(exc: OSError) -> bool:
    return isinstance(exc, socket.gaierror) or exc.errno in _BIND_ERRNOS


def run(
    app: App,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    loop: str = "auto",
    ssl_context: ssl.SSLContext | None = None,
    trace: bool = False,
    banner: str | None = "rawrt",
    notify: Callable[[], None] | None = None,
    **options: Any,
) -> None:
    """Serve ``app`` until SIGINT/SIGTERM (then shut down gracefully).

    ``options`` are :func:`rawrt.server.serve`'s other keywords (``limits``, ``proxy_headers``, ``uds``,
    ``sock``...). ``banner=None`` prints no "listening on" line (a worker: its supervisor prints one);
    ``notify`` is called once the server listens and its startup hooks ran.

    Raises:
        ConfigError: the address cannot be listened on (in use, not local, unresolvable, no permission).
    """
    loop_name = _install_loop(loop)
    scheme = "https" if ssl_context else "http"
    uds = options.get("uds")
    started = False

    def ready(server: Server) -> None:
        nonlocal started
        started = True
        if notify is not None:
            notify()
        if banner is None:
            return
        if uds is not None:
            where = f"{scheme}+unix:{uds}"
        else:
            shown = f"[{server.host}]" if ":" in server.host else server.host
            where = f"{scheme}://{shown}:{server.port}/"
        print(f"{banner} listening on {where} (loop: {loop_name})", flush=True)

    try:
        asyncio.run(serve(app, host, port, ssl=ssl_context, trace=trace, ready=ready, **options))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        if started or not _bind_error(exc):
            raise
        where = f"unix socket {uds}" if uds is not None else f"{host}:{port}"
        reason = exc.strerror if isinstance(exc, socket.gaierror) or not exc.errno else os.strerror(exc.errno)
        raise ConfigError(f"cannot listen on {where}: {reason}") from None


def _print_user_traceback() -> None:
    """The exception being handled, from the user's module down: the frames of rawrt's loader and of
    importlib's machinery say nothing about the bug."""
    exc = sys.exc_info()[1]
    assert exc is not None
    tb = exc.__traceback__
    while tb is not None and (
        tb.tb_frame.f_code.co_filename in (__file__, importlib.__file__)
        or tb.tb_frame.f_code.co_filename.startswith("<frozen")
    ):
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb or exc.__traceback__)


def _fail(prog: str, message: str) -> NoReturn:
    print(f"{prog}: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    """The command line: ``serve``, ``demo``, ``testee-client``, ``compare`` and ``experiment`` (the doc tests
    parse every ``rawrt`` command the docs show with it)."""
    parser = _Parser(prog="rawrt", description=__doc__.split("\n\n")[0])
    shown_version = f"rawrt {version()}"
    parser.add_argument("--version", action="version", version=shown_version)
    sub = parser.add_subparsers(dest="command", required=True)
    p_serve = sub.add_parser("serve", help="serve an App: rawrt serve module:app")
    p_serve.add_argument("app", help="module:attribute of a rawrt.App")
    p_demo = sub.add_parser("demo", help="the demo server (/hello, /echo, /inspect, /ws, ...)")
    for p in (p_serve, p_demo):
        p.add_argument("--version", action="version", version=shown_version)
        add_server_arguments(p)
    p_testee = sub.add_parser(
        "testee-client", help="the Autobahn client testee: rawrt testee-client ws://HOST:PORT [--agent NAME]"
    )
    add_testee_arguments(p_testee)
    p_compare = sub.add_parser(
        "compare", help="measure polling, long polling, SSE and WebSocket on a demo: rawrt compare [URL]"
    )
    _compare_arguments(p_compare)
    p_experiment = sub.add_parser(
        "experiment", help="run one of the protocol lab's experiments: rawrt experiment NAME [URL]"
    )
    _experiment_arguments(p_experiment)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``rawrt`` and ``python -m rawrt``."""
    parser = build_parser()
    args = parser.parse_args(argv)

    if args.command == "experiment":
        _run_experiment(args)

    if args.command == "compare":
        _run_compare(args)

    if args.command == "testee-client":
        import logging

        logging.basicConfig(
            level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s"
        )
        raise SystemExit(run_testee(args))

    prog = f"rawrt {args.command}"
    try:
        config = Config.from_args(args)
        options = config.server_options()  # builds the TLS context: a bad file fails before the import
        worker = os.environ.get(WORKER_INDEX) if os.environ.get(WORKER_SOCKET) else None
        config.configure_logging(f"[worker {worker}] " if worker else "")
        if config.hub is not None:
            # Through the environment, so that the user's app (open_backend() with no URL) and every worker
            # get the same hub.
            os.environ[HUB_ENV_VAR] = config.hub
        worker_sock = worker_socket()
        supervising = config.workers > 1 and worker_sock is None
        if supervising and args.command == "demo" and config.effective_hub() == "memory":
            raise ConfigError(_SPLIT_HUB.format(workers=config.workers, what="the demo's channels"))
        if args.command == "serve":
            try:
                app = load_app(args.app)
            except ConfigError:
                raise
            except Exception:
                # The user's module raised while imported: its own traceback, then exit status 1.
                _print_user_traceback()
                print(
                    f"{prog}: error: importing {args.app.partition(':')[0]!r} raised (traceback above)",
                    file=sys.stderr,
                )
                raise SystemExit(1) from None
            banner = "rawrt"
            if supervising and _has_memory_hub(app):
                raise ConfigError(
                    _SPLIT_HUB.format(workers=config.workers, what=f"the channels of {args.app}")
                )
        else:
            from .demo import create_app

            app = create_app(config.limits)
            banner = "rawrt demo"
        if supervising:
            raise SystemExit(_supervise(config, banner, list(sys.argv[1:] if argv is None else argv)))
        ssl_context = options.pop("ssl")
        options.pop("trace")
        if worker_sock is not None:
            options["sock"] = worker_sock
            options.pop("uds", None)
        run(
            app,
            config.host,
            config.port,
            loop=config.loop,
            ssl_context=ssl_context,
            trace=config.trace,
            banner=None if worker_sock is not None else banner,
            notify=report_ready if worker_sock is not None else None,
            **options,
        )
    except ConfigError as exc:
        _fail(prog, str(exc))


def _compare_arguments(parser: argparse.ArgumentParser) -> None:
    # Imported here: the other commands never load the comparison's clients.
    from .compare import add_arguments

    add_arguments(parser)


def _run_compare(args: argparse.Namespace) -> NoReturn:
    """``rawrt compare``: the report on stdout; a CompareError is one line and exit status 2."""
    from .compare import CompareError
    from .compare import main as compare

    try:
        report = compare(args)
    except CompareError as exc:
        _fail("rawrt compare", str(exc))
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    print(report, flush=True)
    raise SystemExit(0)


def _experiment_arguments(parser: argparse.ArgumentParser) -> None:
    from .experiment import add_arguments

    add_arguments(parser)


def _run_experiment(args: argparse.Namespace) -> NoReturn:
    """``rawrt experiment``: the exchange on stdout, exit 0 (check holds) or 1; an error is one line, 2."""
    from .experiment import main as experiment
    from .lab.experiments import ExperimentError

    try:
        ok, report = experiment(args)
    except ExperimentError as exc:
        _fail(f"rawrt experiment {args.name}", str(exc))
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    print(report, flush=True)
    raise SystemExit(0 if ok else 1)


#: Why ``--workers`` above 1 needs a shared hub (issue: each worker would number and keep its own events).
_SPLIT_HUB = (
    "--workers {workers} needs a shared hub: with the memory hub each worker would keep its own events and "
    "a client moving between workers would miss them ({what}); use --hub redis://HOST:PORT/DB"
)


def _has_memory_hub(app: App) -> bool:
    """Whether ``app`` keeps a hub in this process (a DemoApp-like ``backend``/``hub`` attribute)."""
    backend = getattr(app, "backend", None)
    if backend is not None:
        return isinstance(backend, MemoryBackend)
    return isinstance(getattr(app, "hub", None), Hub)


def _supervise(config: Config, banner: str, argv: list[str]) -> int:
    """``--workers N``: bind, start the workers, print the banner, supervise (:mod:`rawrt.workers`)."""
    supervisor = Supervisor(
        argv,
        config.workers,
        host=config.host,
        port=config.port,
        uds=config.uds,
        shutdown_timeout=config.limits.shutdown_timeout,
    )
    try:
        supervisor.bind()
    except OSError as exc:
        if not _bind_error(exc):
            raise
        where = f"unix socket {config.uds}" if config.uds is not None else f"{config.host}:{config.port}"
        reason = exc.strerror if isinstance(exc, socket.gaierror) or not exc.errno else os.strerror(exc.errno)
        raise ConfigError(f"cannot listen on {where}: {reason}") from None
    scheme = "https" if config.ssl_certfile else "http"
    if config.uds is not None:
        where = f"{scheme}+unix:{config.uds}"
    else:
        shown = f"[{config.host}]" if ":" in config.host else config.host
        where = f"{scheme}://{shown}:{supervisor.port}/"
    loop_name = _loop_name(config.loop)

    def ready() -> None:
        pids = ", ".join(map(str, supervisor.pids()))
        print(
            f"{banner} listening on {where} (loop: {loop_name}), {config.workers} workers (pids {pids}), "
            f"hub {without_password(config.effective_hub())}",
            flush=True,
        )

    try:
        return supervisor.run(ready)
    except WorkerExit as exc:
        print(f"{banner}: error: {exc}", file=sys.stderr, flush=True)
        return 1


def _loop_name(choice: str) -> str:
    """The loop the workers will run (``_install_loop``'s choice, without installing it here)."""
    if choice == "asyncio":
        return "asyncio"
    if importlib.util.find_spec("uvloop") is None:
        if choice == "uvloop":
            raise ConfigError(
                "--loop uvloop: uvloop is not installed (pip install '.[uvloop]' in rawrt's checkout)"
            )
        return "asyncio"
    return "uvloop"
