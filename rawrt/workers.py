"""``--workers N``: one supervisor process and N worker processes serving one address.

The supervisor (the process the user started) never serves a request. It:

1. **holds the address.** Where the OS has ``SO_REUSEPORT`` (Linux, the BSDs, macOS) each worker gets a
   listening socket of its own, bound to the same address with ``SO_REUSEPORT``, and the kernel spreads new
   connections over the listening sockets. The supervisor keeps one more socket bound there but *not
   listening*: the kernel only hands connections to listening sockets, so it takes none, but it keeps the
   port (port 0 resolved once, for every worker) while a dead worker is replaced. Elsewhere, and for a Unix
   domain socket (``SO_REUSEPORT`` is a TCP/UDP option), one socket is bound and listened on once, and every
   worker accepts from it (gunicorn's and uvicorn's way).
2. **starts the workers** as ``python -m rawrt`` with the same command line, the listening socket passed as
   an inherited file descriptor (:data:`ENV_SOCKET`). A worker runs the ordinary single-process server on it.
3. **restarts a worker that dies**, after a delay that doubles while it keeps dying quickly (0.1 s up to
   10 s; back to 0.1 s once a worker has lived 10 s), and gives up, stopping the others, when a worker dies
   before it was ready five times in a row: that is a worker that cannot start, not a crash. A worker is
   ready once it listens and its startup hooks ran; it says so on a pipe (:data:`ENV_READY`), and the
   supervisor prints its "listening on" line once every worker has.
4. **forwards SIGINT and SIGTERM** to every worker, which shuts down gracefully (``rawrt.server.serve``),
   waits for them (the shutdown timeout plus a margin, then ``SIGKILL``), and exits.

Workers run in their own session, so a Ctrl-C in a terminal reaches the supervisor alone and each worker
is stopped once, by the forwarded signal. A worker also stops when the supervisor is gone, even by
``SIGKILL``: it holds the read end of a pipe only the supervisor writes to (:data:`ENV_PARENT`), and end of
file there means "no supervisor" (no ``prctl``, so it works on every Unix).

The workers share nothing but the address: each has its own hub, so an app whose transports use a hub must
give them a shared one (``--hub redis://...``, :mod:`rawrt.hub.backends`). The CLI refuses ``--workers``
above 1 with the memory hub for that reason.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .server.server import remove_stale_socket

__all__ = [
    "ENV_SOCKET",
    "ENV_PARENT",
    "ENV_INDEX",
    "ENV_READY",
    "Supervisor",
    "WorkerExit",
    "report_ready",
    "worker_socket",
]

logger = logging.getLogger("rawrt.workers")

#: In a worker: the file descriptor of its listening socket.
ENV_SOCKET = "RAWRT_WORKER_SOCKET"
#: In a worker: the read end of the supervisor's pipe (end of file: the supervisor is gone).
ENV_PARENT = "RAWRT_WORKER_PARENT"
#: In a worker: its number, 1 to N (for logs).
ENV_INDEX = "RAWRT_WORKER"
#: In a worker: the write end of the supervisor's readiness pipe (the worker writes its number there once
#: it listens and its startup hooks ran).
ENV_READY = "RAWRT_WORKER_READY"

#: A worker's first restart comes after this delay, doubled while it keeps dying within STABLE seconds.
FIRST_DELAY = 0.1
MAX_DELAY = 10.0
STABLE = 10.0
#: A worker that dies before it is ready BOOT_FAILURES times in a row cannot start.
BOOT_FAILURES = 5

_HAS_REUSEPORT = hasattr(socket, "SO_REUSEPORT")


class WorkerExit(Exception):
    """The supervisor gave up: a worker cannot start. One line for the CLI (exit status 1)."""


def worker_socket() -> socket.socket | None:
    """In a worker process: its listening socket, and the watch on the supervisor started; else ``None``."""
    fd = os.environ.get(ENV_SOCKET)
    if fd is None:
        return None
    parent = os.environ.get(ENV_PARENT)
    if parent is not None:
        threading.Thread(target=_stop_when_orphaned, args=(int(parent),), daemon=True).start()
    return socket.socket(fileno=int(fd))


def report_ready() -> None:
    """In a worker process: tell the supervisor this worker serves (its startup hooks ran); else nothing."""
    fd = os.environ.get(ENV_READY)
    index = os.environ.get(ENV_INDEX)
    if fd is not None and index is not None:
        with contextlib.suppress(OSError):
            os.write(int(fd), f"{index}\n".encode())
            os.close(int(fd))


def _stop_when_orphaned(fd: int) -> None:
    """Block on the supervisor's pipe; at end of file, shut this worker down as SIGTERM would."""
    while True:
        try:
            if not os.read(fd, 1):
                break
        except InterruptedError:  # pragma: no cover - PEP 475 retries; kept for clarity
            continue
        except OSError:
            break
    logger.warning("the supervisor is gone: shutting down")
    os.kill(os.getpid(), signal.SIGTERM)


def _describe(status: int) -> str:
    """A ``Popen.returncode`` in words: ``exit status 3``, ``killed by SIGKILL``."""
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exit status {status}"


@dataclass
class _Worker:
    index: int
    process: subprocess.Popen[bytes] | None = None
    sock: socket.socket | None = None
    started: float = 0.0
    restart_at: float | None = None
    delay: float = FIRST_DELAY
    ready: bool = False
    boot_failures: int = 0


class Supervisor:
    """Run ``count`` workers of ``python -m rawrt *argv`` on one address until SIGINT/SIGTERM.

    Args:
        argv: the command line the workers run (the supervisor's own, ``--workers`` included: a worker knows
            it is one from its environment).
        count: how many workers.
        host, port: the TCP address, or ``uds``: a Unix domain socket's path.
        shutdown_timeout: how long a worker may take to stop gracefully before the margin and ``SIGKILL``.

    Raises (from :meth:`bind`):
        OSError: the address cannot be listened on.
    """

    def __init__(
        self,
        argv: Sequence[str],
        count: int,
        *,
        host: str = "127.0.0.1",
        port: int = 8000,
        uds: str | None = None,
        shutdown_timeout: float = 10.0,
    ) -> None:
        self.argv = list(argv)
        self.workers = [_Worker(i + 1) for i in range(count)]
        self.host = host
        self.port = port
        self.uds = uds
        self.shutdown_timeout = shutdown_timeout
        self.restarts = 0
        self._family = socket.AF_INET
        self._address: tuple[str, int] | str = (host, port)
        self._reserved: socket.socket | None = None  # SO_REUSEPORT: bound, never listening
        self._shared: socket.socket | None = None  # otherwise: the one listening socket
        self._parent_r, self._parent_w = os.pipe()
        self._ready_r, self._ready_w = os.pipe()
        os.set_blocking(self._ready_r, False)
        self._ready_buffer = b""

    # --- the address -------------------------------------------------------------------------------

    def bind(self) -> None:
        """Take the address (before any worker starts, so a mistake is the supervisor's one-line error)."""
        if self.uds is not None:
            remove_stale_socket(self.uds)
            self._family, self._address = socket.AF_UNIX, self.uds
            self._shared = self._listener()
            return
        info = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        self._family = info[0]
        self._address = (str(info[4][0]), int(info[4][1]))
        if not _HAS_REUSEPORT:
            self._shared = self._listener()
            self.port = self._shared.getsockname()[1]
            return
        if self.port:
            # SO_REUSEPORT lets any process of this user join the port silently: check first that nobody
            # listens there, as a plain bind would.
            probe = socket.socket(self._family, socket.SOCK_STREAM)
            try:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(self._address)
            finally:
                probe.close()
        reserved = socket.socket(self._family, socket.SOCK_STREAM)
        try:
            reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            reserved.bind(self._address)
        except OSError:
            reserved.close()
            raise
        self._reserved = reserved
        self.port = reserved.getsockname()[1]
        self._address = (str(self._address[0]), self.port)

    def _listener(self) -> socket.socket:
        sock = socket.socket(self._family, socket.SOCK_STREAM)
        try:
            if self._family != socket.AF_UNIX:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if self._reserved is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(self._address)
            # Listening here, not in the worker: connections that come while the worker starts wait in the
            # backlog instead of being refused.
            sock.listen(1024)
        except OSError:
            sock.close()
            raise
        return sock

    # --- the workers -------------------------------------------------------------------------------

    def _spawn(self, worker: _Worker) -> None:
        sock = self._shared if self._shared is not None else self._listener()
        env = dict(os.environ)
        env[ENV_SOCKET] = str(sock.fileno())
        env[ENV_PARENT] = str(self._parent_r)
        env[ENV_INDEX] = str(worker.index)
        env[ENV_READY] = str(self._ready_w)
        worker.ready = False
        worker.process = subprocess.Popen(
            [sys.executable, "-m", "rawrt", *self.argv],
            env=env,
            pass_fds=(sock.fileno(), self._parent_r, self._ready_w),
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        if sock is not self._shared:
            # The worker holds its socket now. Closing the supervisor's copy matters: when the worker dies,
            # its socket must close with it, or the kernel would keep queueing connections there.
            sock.close()
        worker.started = time.monotonic()
        worker.restart_at = None
        logger.info("worker %d started (pid %d)", worker.index, worker.process.pid)

    def pids(self) -> list[int]:
        """The live workers' process ids."""
        return [w.process.pid for w in self.workers if w.process is not None and w.process.poll() is None]

    def _reap(self, now: float) -> None:
        """Notice dead workers and plan their restart (module docstring, 3)."""
        for worker in self.workers:
            process = worker.process
            if process is None or process.poll() is None:
                continue
            worker.process = None
            if now - worker.started >= STABLE:
                worker.delay = FIRST_DELAY
            worker.boot_failures = 0 if worker.ready else worker.boot_failures + 1
            if worker.boot_failures >= BOOT_FAILURES:
                raise WorkerExit(
                    f"worker {worker.index} died before it was ready {BOOT_FAILURES} times in a row "
                    f"({_describe(process.returncode)}); its log above says why"
                )
            logger.warning(
                "worker %d (pid %d) died (%s); restarting it in %.1f s",
                worker.index,
                process.pid,
                _describe(process.returncode),
                worker.delay,
            )
            worker.restart_at = now + worker.delay
            worker.delay = min(worker.delay * 2, MAX_DELAY)

    def _read_ready(self) -> None:
        """Mark the workers that reported ready (their numbers, one per line, on the readiness pipe)."""
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(self._ready_r, 4096):
                self._ready_buffer += chunk
        *lines, self._ready_buffer = self._ready_buffer.split(b"\n")
        for line in lines:
            index = int(line) if line.isdigit() else 0
            if 1 <= index <= len(self.workers):
                self.workers[index - 1].ready = True

    def run(self, ready: Callable[[], None] | None = None) -> int:
        """Start the workers and supervise them until SIGINT/SIGTERM; the exit status (0: all stopped
        cleanly). Call :meth:`bind` first. ``ready`` is called once, when every worker first reported ready.

        Raises:
            WorkerExit: a worker cannot start (module docstring, 3).
        """
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        caught: list[int] = []

        def note(signum: int, _frame: object) -> None:
            caught.append(signum)

        # Handlers that only record; set_wakeup_fd makes select() below return when a signal arrives.
        previous = {sig: signal.signal(sig, note) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD)}
        old_wakeup = signal.set_wakeup_fd(wake_w.fileno())
        try:
            for worker in self.workers:
                self._spawn(worker)
            stop: int | None = None
            while stop is None:
                now = time.monotonic()
                due = [w.restart_at for w in self.workers if w.restart_at is not None]
                timeout = max(0.0, min(due) - now) if due else None
                readable, _, _ = select.select([wake_r.fileno(), self._ready_r], [], [], timeout)
                with contextlib.suppress(BlockingIOError):
                    wake_r.recv(4096)
                if self._ready_r in readable:
                    self._read_ready()
                    if ready is not None and all(w.ready for w in self.workers):
                        ready()
                        ready = None
                while caught:
                    signum = caught.pop(0)
                    if signum in (signal.SIGINT, signal.SIGTERM):
                        stop = signum
                if stop is not None:
                    break
                now = time.monotonic()
                self._reap(now)
                for worker in self.workers:
                    if worker.restart_at is not None and worker.restart_at <= now:
                        self._spawn(worker)
                        self.restarts += 1
            return self._stop(signal.Signals(stop))
        except BaseException:
            self._kill_all()
            raise
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            wake_r.close()
            wake_w.close()
            self._close()

    def _stop(self, signum: signal.Signals) -> int:
        """Forward the signal, wait for a graceful stop, then SIGKILL whoever is left."""
        live = [w.process for w in self.workers if w.process is not None and w.process.poll() is None]
        logger.info("%s: stopping %d worker(s)", signum.name, len(live))
        for process in live:
            process.send_signal(signum)
        deadline = time.monotonic() + self.shutdown_timeout + 5.0
        status = 0
        for process in live:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.error("worker pid %d did not stop in time: killed", process.pid)
                process.kill()
                process.wait()
            if process.returncode != 0:
                status = 1
        return status

    def _kill_all(self) -> None:
        for worker in self.workers:
            if worker.process is not None and worker.process.poll() is None:
                worker.process.kill()
                worker.process.wait()

    def _close(self) -> None:
        for sock in (self._reserved, self._shared):
            if sock is not None:
                sock.close()
        for fd in (self._parent_r, self._parent_w, self._ready_r, self._ready_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._parent_r = self._parent_w = self._ready_r = self._ready_w = -1
        if self.uds is not None:
            try:
                os.unlink(self.uds)
            except OSError:
                pass
