"""The server's configuration as the command line gives it: one :class:`Config`, built from the flags of
``rawrt serve`` and ``rawrt demo`` (uvicorn's ``Config`` has the same role).

Contract: everything a user can get wrong on the command line is found here, before the event loop starts,
and reported as one :class:`ConfigError` whose message names the flag or the file (the CLI prints it on one
line and exits with status 2, as argparse does for its own usage errors). Values argparse can check alone
(a port, a size, a ``NAME=VALUE``) are checked by the ``type=`` functions below, so that they fail at parse
time; the rest (files, combinations of flags) by :meth:`Config.from_args`.

Every :class:`~rawrt.limits.Limits` field can be set: the generic ``--limit NAME=VALUE`` (checked against
the dataclass's fields and their types) and, for the ones uvicorn users know, its named flags.
"""

from __future__ import annotations

import argparse
import configparser
import dataclasses
import importlib.util
import ipaddress
import json
import logging
import logging.config
import math
import os
import re
import ssl
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .hub.backends import ENV_VAR as HUB_ENV_VAR
from .hub.backends import hub_url_problem, without_password
from .limits import DEFAULT_LIMITS, Limits
from .server.channel import ACCESS_LOG_FIELDS

__all__ = ["Config", "ConfigError", "add_arguments", "parse_limit", "parse_port", "parse_size"]


class ConfigError(Exception):
    """A mistake on the command line or in a file it names: one line, exit status 2."""


# --- Values argparse checks (type= functions) -----------------------------------------------------------

#: Binary suffixes a size may carry (``16MiB``, ``64KiB``); a bare number is bytes.
_SIZE = re.compile(r"(?P<number>[0-9]+(?:_[0-9]+)*)\s*(?P<unit>B|KiB|MiB|GiB)?", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "kib": 1024, "mib": 1024**2, "gib": 1024**3}


def parse_size(text: str) -> int:
    """A byte count: ``65536``, ``64KiB``, ``16MiB``, ``1GiB`` (binary units, case-insensitive)."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"expected a size such as 65536, 64KiB or 16MiB, got {text!r}")
    return int(match["number"]) * _UNITS[(match["unit"] or "").lower()]


def parse_port(text: str) -> int:
    """A TCP port, 0 to 65535 (0: the system picks one). Checked here because a larger number is silently
    taken modulo 65536 by some loops (uvloop binds ``--port 70000`` to 4464)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is out of range (0-65535)")
    return port


def _parse_seconds(text: str, *, optional: bool) -> float | None:
    lowered = text.strip().lower()
    if optional and lowered in ("none", "off"):
        return None
    try:
        value = float(lowered)
    except ValueError:
        expected = "seconds or 'none'" if optional else "seconds"
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative number of seconds, got {text!r}")
    return value


def parse_seconds(text: str) -> float:
    """A duration in seconds (``5``, ``0.5``)."""
    value = _parse_seconds(text, optional=False)
    assert value is not None
    return value


def parse_interval(text: str) -> float | None:
    """A keepalive interval or timeout: seconds, with ``0`` or ``none`` turning it off (uvicorn's flags)."""
    value = _parse_seconds(text, optional=True)
    return None if value == 0 else value


def parse_count(text: str) -> int:
    """A positive count (connections)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {value}")
    return value


def _limit_types() -> dict[str, Any]:
    # Limits is written with ``from __future__ import annotations``: resolve the field types once.
    return typing.get_type_hints(Limits)


def parse_limit(item: str) -> tuple[str, int | float | None]:
    """``NAME=VALUE`` for one :class:`Limits` field, the value checked against the field's type: an ``int``
    field takes a size (``16MiB``) or a count, a ``float`` field seconds; an optional one also ``none``
    (its ``None``: a timeout off, ``max_connections`` sized from the file-descriptor limit)."""
    name, sep, text = item.partition("=")
    name = name.strip().replace("-", "_")
    hints = _limit_types()
    if not sep:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {item!r}")
    if name not in hints:
        raise argparse.ArgumentTypeError(
            f"unknown limit {name!r} (one of: {', '.join(f.name for f in dataclasses.fields(Limits))})"
        )
    hint = hints[name]
    optional = isinstance(hint, types.UnionType) and type(None) in typing.get_args(hint)
    base = next(t for t in typing.get_args(hint) if t is not type(None)) if optional else hint
    try:
        if base is int:
            if optional and text.strip().lower() in ("none", "off"):
                return name, None
            return name, parse_size(text)
        assert base is float, f"Limits.{name}: unsupported type {hint}"
        return name, _parse_seconds(text, optional=optional)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{name}: {exc}") from None


def parse_allowed_ips(text: str) -> tuple[str, ...]:
    """``--forwarded-allow-ips``: comma-separated addresses or networks (``10.0.0.0/8``), or ``*``."""
    items = tuple(part.strip() for part in text.split(",") if part.strip())
    for item in items:
        if item == "*":
            continue
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an IP address or network: {item!r}") from None
    return items


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``serve`` and ``demo`` (docs/howto/configure.md has the table)."""
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    add("--port", type=parse_port, default=8000, help="port to bind, 0-65535 (default 8000; 0 picks one)")
    add("--uds", metavar="PATH", help="listen on this Unix domain socket instead of --host/--port")
    add("--loop", choices=["auto", "asyncio", "uvloop"], default="auto")
    add("--ssl-certfile", metavar="FILE", help="PEM certificate chain: serve HTTPS/WSS")
    add("--ssl-keyfile", metavar="FILE", help="PEM private key (if not inside the certfile)")
    add(
        "--trace",
        action="store_true",
        help="print the wire, annotated: heads, chunks, SSE fields, WebSocket, HTTP/2 frames (rawrt.trace)",
    )
    add("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    add("--log-config", metavar="FILE", help="logging configuration: dictConfig JSON (.json) or .ini")
    add("--no-access-log", action="store_true", help="silence rawrt.access")
    add("--access-log-format", metavar="FMT", help="format of each rawrt.access line")
    add("--proxy-headers", action="store_true", help="take the client address from X-Forwarded-For/Forwarded")
    add(
        "--forwarded-allow-ips",
        type=parse_allowed_ips,
        default=("127.0.0.1", "::1"),
        metavar="LIST",
        help="proxies trusted for --proxy-headers, comma-separated, or * (default 127.0.0.1,::1)",
    )
    add("--root-path", default="", metavar="PATH", help="the prefix a proxy mounts the app under")
    add(
        "--hub",
        metavar="URL",
        help="the hub's backend: memory, or redis://HOST:PORT/DB shared by every worker and node "
        "(the redis extra: pip install '.[redis]' in rawrt's checkout); default: $RAWRT_HUB, else memory",
    )
    add(
        "--workers",
        type=parse_count,
        default=1,
        metavar="N",
        help="N processes on one port, under a supervisor that restarts them (above 1 needs a shared --hub)",
    )
    limits = parser.add_argument_group("limits (every Limits field: --limit NAME=VALUE)")
    limits.add_argument(
        "--limit-concurrency", type=parse_count, metavar="N", help="Limits.max_connections (503 past it)"
    )
    limits.add_argument(
        "--timeout-keep-alive", type=parse_seconds, metavar="S", help="Limits.keep_alive_timeout"
    )
    limits.add_argument(
        "--ws-max-size",
        type=parse_size,
        metavar="BYTES",
        help="Limits.ws_max_message_size and ws_max_frame_size (1009 past it)",
    )
    limits.add_argument(
        "--ws-ping-interval", type=parse_interval, default=..., metavar="S", help="0 or none: no pings"
    )
    limits.add_argument(
        "--ws-ping-timeout", type=parse_interval, default=..., metavar="S", help="0 or none: wait forever"
    )
    limits.add_argument(
        "--limit",
        type=parse_limit,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any Limits field, e.g. max_body_size=16MiB or body_timeout=none (repeatable)",
    )


# --- The configuration ---------------------------------------------------------------------------------


def _limits_from(args: argparse.Namespace) -> Limits:
    """The named flags first, then every ``--limit`` in order (so an explicit field wins over a shortcut)."""
    changes: dict[str, Any] = {}
    if args.limit_concurrency is not None:
        changes["max_connections"] = args.limit_concurrency
    if args.timeout_keep_alive is not None:
        changes["keep_alive_timeout"] = args.timeout_keep_alive
    if args.ws_max_size is not None:
        # One bound for both, as uvicorn's ws_max_size: a frame longer than the largest message could never
        # be accepted, and a message raised above the frame limit would still be refused frame by frame.
        changes["ws_max_message_size"] = changes["ws_max_frame_size"] = args.ws_max_size
    # ``...`` (not None) marks "not given", since None is a value here (pings off).
    if args.ws_ping_interval is not ...:
        changes["ws_ping_interval"] = args.ws_ping_interval
    if args.ws_ping_timeout is not ...:
        changes["ws_ping_timeout"] = args.ws_ping_timeout
    changes.update(args.limit)
    return dataclasses.replace(DEFAULT_LIMITS, **changes)


def _readable(path: str, what: str) -> None:
    """Name the file when it is missing or unreadable (ssl's own errors do not)."""
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise ConfigError(f"{what} {path}: {exc.strerror or exc}") from None


@dataclass(frozen=True)
class Config:
    """What ``rawrt serve`` / ``rawrt demo`` run, as the flags gave it.

    Attributes mirror the flags; :attr:`limits` is the :class:`Limits` the named limit flags and every
    ``--limit NAME=VALUE`` produce; :meth:`server_options` are :func:`rawrt.server.serve`'s keywords.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    uds: str | None = None
    loop: str = "auto"
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    trace: bool = False
    log_level: str = "info"
    log_config: str | None = None
    access_log: bool = True
    access_log_format: str | None = None
    proxy_headers: bool = False
    forwarded_allow_ips: tuple[str, ...] = ("127.0.0.1", "::1")
    root_path: str = ""
    hub: str | None = None
    workers: int = 1
    limits: Limits = field(default=DEFAULT_LIMITS)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Config:
        """Build from parsed flags; raises :class:`ConfigError` for a combination that cannot work."""
        if args.ssl_keyfile and not args.ssl_certfile:
            raise ConfigError("--ssl-keyfile needs --ssl-certfile (the certificate chain to serve)")
        if args.root_path and not args.root_path.startswith("/"):
            raise ConfigError(f"--root-path must start with '/', got {args.root_path!r}")
        if args.access_log_format is not None:
            try:
                # The check Server makes, here so that it is a usage error rather than a traceback.
                args.access_log_format % dict.fromkeys(ACCESS_LOG_FIELDS, 0)
            except (KeyError, ValueError, TypeError) as exc:
                fields = ", ".join(ACCESS_LOG_FIELDS)
                raise ConfigError(
                    f"--access-log-format {args.access_log_format!r}: {exc!r} (fields: {fields})"
                ) from None
        hub = getattr(args, "hub", None)
        if hub is not None:
            _check_hub(hub)
        return cls(
            host=args.host,
            port=args.port,
            uds=args.uds,
            loop=args.loop,
            ssl_certfile=args.ssl_certfile,
            ssl_keyfile=args.ssl_keyfile,
            trace=args.trace,
            log_level=args.log_level,
            log_config=args.log_config,
            access_log=not args.no_access_log,
            access_log_format=args.access_log_format,
            proxy_headers=args.proxy_headers,
            forwarded_allow_ips=args.forwarded_allow_ips,
            root_path=args.root_path.rstrip("/"),
            hub=hub,
            workers=getattr(args, "workers", 1),
            limits=_limits_from(args),
        )

    def effective_hub(self) -> str:
        """The hub the app will get: ``--hub``, else ``$RAWRT_HUB``, else ``memory``."""
        return self.hub or os.environ.get(HUB_ENV_VAR) or "memory"

    def ssl_context(self) -> ssl.SSLContext | None:
        """The server-side TLS context, or ``None`` for plain HTTP; a bad file is a :class:`ConfigError`."""
        if not self.ssl_certfile:
            return None
        _readable(self.ssl_certfile, "--ssl-certfile")
        if self.ssl_keyfile:
            _readable(self.ssl_keyfile, "--ssl-keyfile")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        # ALPN (RFC 7301): HTTP/2 for the clients that offer it (RFC 9113 §3.2), HTTP/1.1 for the rest.
        context.set_alpn_protocols(["h2", "http/1.1"])
        try:
            context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        except ssl.SSLError as exc:
            files = self.ssl_certfile + (f" and {self.ssl_keyfile}" if self.ssl_keyfile else "")
            raise ConfigError(
                f"cannot load the certificate and key from {files}: {exc.reason or exc}"
            ) from None
        return context

    def configure_logging(self, tag: str = "") -> None:
        """The root level and format, then ``--log-config`` on top (which may replace them). ``tag`` starts
        every message (``[worker 2]``: the workers of ``--workers`` share one stderr)."""
        logging.basicConfig(
            level=self.log_level.upper(), format=f"%(asctime)s {tag}%(name)s %(levelname)s %(message)s"
        )
        if self.log_config is not None:
            _load_log_config(self.log_config)
        if not self.access_log:
            logging.getLogger("rawrt.access").setLevel(logging.WARNING)
        if self.trace:
            logging.getLogger("rawrt.trace").setLevel(logging.DEBUG)

    def server_options(self) -> dict[str, Any]:
        """Keywords for :func:`rawrt.server.serve` (besides ``app``, ``host``, ``port``, ``ready``)."""
        options: dict[str, Any] = {"limits": self.limits, "ssl": self.ssl_context(), "trace": self.trace}
        # Only what differs from serve()'s defaults, so a plain `rawrt serve` keeps working on a server that
        # predates these keywords.
        if self.proxy_headers:
            options["proxy_headers"] = True
            options["forwarded_allow_ips"] = self.forwarded_allow_ips
        if self.root_path:
            options["root_path"] = self.root_path
        if self.access_log_format is not None:
            options["access_log_format"] = self.access_log_format
        if self.uds is not None:
            options["uds"] = self.uds
        return options


def _check_hub(url: str) -> None:
    """A ``--hub`` URL that names a backend, whose extra is installed."""
    problem = hub_url_problem(url)
    if problem is not None:
        raise ConfigError(problem)
    if url != "memory" and importlib.util.find_spec("redis") is None:
        raise ConfigError(
            f"--hub {without_password(url)!r} needs redis-py: pip install '.[redis]' in rawrt's checkout"
        )


def _load_log_config(path: str) -> None:
    """A ``logging.config.dictConfig`` in JSON, or a ``fileConfig`` ``.ini``; every failure one line."""
    try:
        if path.endswith((".ini", ".cfg", ".conf")):
            _readable(path, "--log-config")
            logging.config.fileConfig(path, disable_existing_loggers=False)
            return
        with open(path, encoding="utf-8") as file:
            value = json.load(file)
        if not isinstance(value, Mapping):
            raise ConfigError(
                f"--log-config {path}: expected a JSON object (a dictConfig), got {type(value).__name__}"
            )
        logging.config.dictConfig(dict(value))
    except OSError as exc:
        raise ConfigError(f"--log-config {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--log-config {path}: not JSON ({exc})") from None
    except (
        ValueError,
        TypeError,
        KeyError,
        AttributeError,
        ImportError,
        RuntimeError,
        configparser.Error,
    ) as exc:
        # dictConfig wraps its errors in ValueError; fileConfig raises RuntimeError, KeyError and friends.
        reason = str(exc).replace("\n", " ")
        raise ConfigError(f"--log-config {path}: {reason}") from None
