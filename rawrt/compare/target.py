"""Where ``rawrt compare`` measures: the :class:`Target` (a URL's host, port and prefix), and the demo
server it starts when given no URL (:class:`DemoProcess`).

The bottom of the package: nothing here opens a client or reads a figure, so every other part can import
it. :class:`CompareError` lives here too, the first place that raises it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from ..errors import RawrtError

__all__ = ["CompareError", "Target", "parse_url", "DemoProcess", "SERVER_TIMEOUT"]

#: Bound on the demo server's start (a cold interpreter on a loaded machine) and on its stop.
SERVER_TIMEOUT = 15.0
#: The banner ``rawrt demo`` prints once it listens (``rawrt/cli.py``).
BANNER = re.compile(r"listening on http://127\.0\.0\.1:(\d+)/ \(loop: (\w+)\)")


class CompareError(RawrtError):
    """A mistake in the command or its target (bad URL, nothing listening, not a rawrt demo): one line."""


# ----------------------------------------------------------------------------------------------- the target


@dataclass(frozen=True)
class Target:
    """Where the demo is: ``host``, ``port``, and the path prefix its endpoints sit under (``""`` at root)."""

    host: str
    port: int
    prefix: str = ""

    @property
    def url(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{shown}:{self.port}{self.prefix}/"

    @property
    def host_header(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return shown if self.port == 80 else f"{shown}:{self.port}"

    def path(self, endpoint: str) -> str:
        return self.prefix + endpoint


def parse_url(url: str) -> Target:
    """``http://HOST[:PORT][/PREFIX]`` as a :class:`Target`.

    Raises:
        CompareError: not an ``http://`` URL with a host (``https`` is not supported: the clients speak
            plain TCP), or it has a query or fragment.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise CompareError(f"invalid URL {url!r}: {exc}") from None
    if parts.scheme != "http" or not parts.hostname:
        raise CompareError(f"expected an http://HOST:PORT/ URL of a rawrt demo, got {url!r}")
    if parts.query or parts.fragment:
        raise CompareError(f"expected the demo's base URL, without a query or fragment, got {url!r}")
    prefix = parts.path.rstrip("/")
    if not re.fullmatch(r"[\x21-\x7e]*", prefix):
        raise CompareError(f"invalid path in {url!r}")
    return Target(parts.hostname, 80 if port is None else port, prefix)


# --------------------------------------------------------------------------------------- the demo server


class DemoProcess:
    """``python -m rawrt demo --port 0`` in a subprocess, with the same rawrt as this process.

    Attributes:
        pid: the server's process id.
        target: where it listens (the port read from its banner).
        loop: the event loop it runs, from its banner (``uvloop`` when installed, else ``asyncio``).
    """

    def __init__(self, proc: subprocess.Popen[bytes], target: Target, loop: str, log: IO[bytes]) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.target = target
        self.loop = loop
        self._log = log

    @classmethod
    def start(cls, timeout: float = SERVER_TIMEOUT) -> DemoProcess:
        """Start the server and wait for its banner.

        Raises:
            CompareError: it exited or printed no banner within ``timeout`` (its stderr is in the message).
        """
        env = dict(os.environ)
        # The child imports the rawrt this process runs, whatever the current directory.
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        # stderr goes to a file, not a pipe nobody reads (a full pipe would block the server's logging).
        log = tempfile.TemporaryFile()
        proc = subprocess.Popen(
            [sys.executable, "-m", "rawrt", "demo", "--host", "127.0.0.1", "--port", "0"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            env=env,
        )
        assert proc.stdout is not None
        line = _readline(proc.stdout, timeout)
        match = BANNER.search(line)
        if match is None:
            _stop(proc, timeout)
            log.seek(0)
            err = log.read().decode(errors="replace").strip().splitlines()
            log.close()
            detail = err[-1] if err else f"it printed {line.strip()!r}"
            raise CompareError(f"the demo server did not start: {detail}")
        return cls(proc, Target("127.0.0.1", int(match.group(1))), match.group(2), log)

    def stop(self, timeout: float = SERVER_TIMEOUT) -> None:
        """SIGTERM (a graceful shutdown), then SIGKILL if it is still running after ``timeout``."""
        _stop(self.proc, timeout)
        self._log.close()


def _readline(stream: IO[bytes], timeout: float) -> str:
    """One line from a pipe, or ``""`` after ``timeout`` seconds (a thread, since a pipe read cannot time out
    portably)."""
    import threading

    out: list[bytes] = []
    reader = threading.Thread(target=lambda: out.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return out[0].decode(errors="replace") if out else ""


def _stop(proc: subprocess.Popen[bytes], timeout: float) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()
