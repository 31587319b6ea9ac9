"""A small Chrome DevTools Protocol driver for the browser tests: launch a headless Chromium, open pages,
evaluate JavaScript in them and wait for conditions, every wait bounded.

Why our own: Playwright and Puppeteer download their own browser, which this machine cannot do; the Debian
``chromium`` package and the ``websockets`` client are all the protocol needs.

Shape:

* :class:`Chromium` is the process. :meth:`Chromium.launch` starts it headless on a fresh profile directory
  with ``--remote-debugging-port=0`` and reads the port Chromium chose from ``DevToolsActivePort``;
  :meth:`Chromium.kill` ends its whole process group and removes the profile, whatever state it is in.
* :class:`Browser` is one DevTools connection (the browser endpoint). One reader task routes each answer to
  the command that waits for it (by ``id``) and each event to its page (by ``sessionId``: targets are
  attached with ``flatten=True``, so every page shares this one WebSocket).
* :class:`Page` is one tab: ``evaluate`` (``Runtime.evaluate`` with ``awaitPromise`` and
  ``returnByValue``), ``navigate``, ``wait_for`` (polls an expression until it is truthy or the deadline
  passes) and ``wait_event`` (a protocol event, e.g. ``Network.webSocketHandshakeResponseReceived``).

Protocol reference: https://chromedevtools.github.io/devtools-protocol/ (Target, Page, Runtime, Network).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

__all__ = ["Chromium", "Browser", "Page", "CDPError", "JavaScriptError", "BrowserTimeout", "FLAGS"]

JSON = dict[str, Any]

#: Headless, as root, and quiet: without the networking flags Chromium keeps trying to reach the network
#: (component updates, sync, QUIC probes), which is closed here.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--mute-audio",
    "--remote-debugging-port=0",
)

#: Default bound of a single wait (a command's answer, a condition, an event), in seconds.
TIMEOUT = 5.0


class CDPError(Exception):
    """A DevTools command answered with an error."""


class JavaScriptError(Exception):
    """An evaluated expression threw (or its promise rejected)."""


class BrowserTimeout(AssertionError):
    """A bounded wait ran out: the condition never held (an AssertionError: pytest reports a failure)."""


class Chromium:
    """A headless Chromium process on a throwaway profile directory.

    Attributes:
        port: the DevTools port Chromium listens on (127.0.0.1).
        browser_path: the browser endpoint's path, ``/devtools/browser/<id>``.
        profile: the ``--user-data-dir``, removed by :meth:`kill`.
    """

    def __init__(self, process: subprocess.Popen[bytes], profile: Path, log: Path) -> None:
        self.process = process
        self.profile = profile
        self.log = log
        self.port = 0
        self.browser_path = ""

    @classmethod
    def launch(cls, executable: str, *, flags: Sequence[str] = (), timeout: float = 15.0) -> Chromium:
        """Start Chromium and wait until its DevTools endpoint is known.

        Args:
            flags: command-line switches added to :data:`FLAGS` (``--ignore-certificate-errors`` for a
                server with a self-signed certificate).

        Raises:
            RuntimeError: Chromium exited or wrote no ``DevToolsActivePort`` within ``timeout`` (the process
                is killed and the profile removed before raising).
        """
        profile = Path(tempfile.mkdtemp(prefix="rawrt-chromium-"))
        log = profile.parent / (profile.name + ".log")
        with open(log, "wb") as stderr:
            process = subprocess.Popen(
                [executable, *FLAGS, *flags, f"--user-data-dir={profile}", "about:blank"],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                # Its own process group: kill() takes the renderers and helpers with it, and nothing else.
                start_new_session=True,
            )
        chromium = cls(process, profile, log)
        try:
            chromium._wait_for_port(timeout)
        except BaseException:
            chromium.kill()
            raise
        return chromium

    def _wait_for_port(self, timeout: float) -> None:
        active = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.process.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(OSError, ValueError):
                lines = active.read_text("ascii").splitlines()
                if len(lines) >= 2 and lines[0].isdigit():  # written whole, but read it defensively
                    self.port, self.browser_path = int(lines[0]), lines[1]
                    return
            time.sleep(0.05)
        raise RuntimeError(f"chromium wrote no DevToolsActivePort within {timeout} s:\n{self.log_tail()}")

    @property
    def browser_url(self) -> str:
        """The browser endpoint's WebSocket URL (the ``webSocketDebuggerUrl`` of ``/json/version``)."""
        return f"ws://127.0.0.1:{self.port}{self.browser_path}"

    def log_tail(self, lines: int = 30) -> str:
        """The end of Chromium's output, for error messages."""
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text("utf-8", "replace").splitlines()[-lines:])
        return "(no log)"

    def kill(self) -> None:
        """Kill the process group, reap the process and remove the profile and log. Idempotent."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        shutil.rmtree(self.profile, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.log.unlink()


class Browser:
    """One DevTools connection to the browser endpoint; pages are attached to it as flat sessions."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[JSON]] = {}
        self._pages: dict[str, Page] = {}
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def connect(cls, url: str, *, timeout: float = TIMEOUT) -> Browser:
        """Connect to a browser endpoint URL (``ws://127.0.0.1:PORT/devtools/browser/ID``)."""
        # proxy=None: websockets >= 15 honours *_proxy variables; DevTools is always on loopback.
        ws = await asyncio.wait_for(connect(url, max_size=None, proxy=None, open_timeout=timeout), timeout)
        return cls(ws)

    async def _read(self) -> None:
        try:
            async for raw in self._ws:
                message: JSON = json.loads(raw)
                if "id" in message:
                    future = self._waiting.pop(message["id"], None)
                    if future is not None and not future.done():
                        future.set_result(message)
                else:
                    page = self._pages.get(message.get("sessionId", ""))
                    if page is not None:
                        page._event(message["method"], message.get("params", {}))
        except ConnectionClosed:
            pass
        finally:
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(CDPError("the DevTools connection closed"))
            self._waiting.clear()

    async def send(
        self, method: str, params: JSON | None = None, *, session: str | None = None, timeout: float = TIMEOUT
    ) -> JSON:
        """Send one command and return its ``result``.

        Raises:
            CDPError: the command failed (or the connection closed).
            BrowserTimeout: no answer within ``timeout``.
        """
        if self._reader.done():
            raise CDPError("the DevTools connection is closed")
        command_id = next(self._ids)
        command: JSON = {"id": command_id, "method": method, "params": params or {}}
        if session is not None:
            command["sessionId"] = session
        future: asyncio.Future[JSON] = asyncio.get_running_loop().create_future()
        self._waiting[command_id] = future
        try:
            await self._ws.send(json.dumps(command))
            answer = await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise BrowserTimeout(f"no answer to {method} within {timeout} s") from None
        finally:
            self._waiting.pop(command_id, None)
        if "error" in answer:
            raise CDPError(f"{method}: {answer['error']}")
        result: JSON = answer.get("result", {})
        return result

    async def new_page(self, url: str = "about:blank", *, timeout: float = TIMEOUT) -> Page:
        """Open a new tab on ``url`` (waiting for its load), attached as a flat session."""
        created = await self.send("Target.createTarget", {"url": "about:blank"})
        target = created["targetId"]
        attached = await self.send("Target.attachToTarget", {"targetId": target, "flatten": True})
        page = Page(self, target, attached["sessionId"])
        self._pages[page.session] = page
        await page.send("Page.enable")
        await page.send("Runtime.enable")
        if url != "about:blank":
            await page.navigate(url, timeout=timeout)
        return page

    async def close_pages(self) -> None:
        """Close every page this connection opened (their connections to servers go with them)."""
        for page in list(self._pages.values()):
            with contextlib.suppress(CDPError, BrowserTimeout):
                await page.close()

    async def close(self) -> None:
        """Close every page this connection opened, then the connection itself (the browser keeps running)."""
        await self.close_pages()
        await self._ws.close()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._reader), TIMEOUT)
        if not self._reader.done():
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


class Page:
    """One tab, driven through its flat session.

    Attributes:
        events: every protocol event the page received since it was attached, as ``(method, params)``.
    """

    def __init__(self, browser: Browser, target: str, session: str) -> None:
        self.browser = browser
        self.target = target
        self.session = session
        self.events: list[tuple[str, JSON]] = []
        self._changed = asyncio.Event()

    def _event(self, method: str, params: JSON) -> None:
        self.events.append((method, params))
        self._changed.set()

    async def send(self, method: str, params: JSON | None = None, *, timeout: float = TIMEOUT) -> JSON:
        """A command in this page's session."""
        return await self.browser.send(method, params, session=self.session, timeout=timeout)

    async def evaluate(self, expression: str, *, timeout: float = TIMEOUT) -> Any:
        """Evaluate ``expression`` in the page (awaiting a promise) and return its value as JSON.

        Raises:
            JavaScriptError: it threw or its promise rejected.
        """
        result = await self.send(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True, "userGesture": True},
            timeout=timeout,
        )
        details = result.get("exceptionDetails")
        if details is not None:
            exception = details.get("exception", {})
            text = exception.get("description") or exception.get("value") or details.get("text")
            raise JavaScriptError(f"{expression[:200]!r} threw: {text}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, *, timeout: float = TIMEOUT, interval: float = 0.02) -> Any:
        """Poll ``expression`` until it is truthy; return its value.

        Raises:
            BrowserTimeout: still falsy after ``timeout`` seconds (the message has its last value).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = await self.evaluate(expression, timeout=max(0.5, deadline - loop.time()))
            if value:
                return value
            if loop.time() >= deadline:
                raise BrowserTimeout(f"{expression!r} still {value!r} after {timeout} s")
            await asyncio.sleep(interval)

    async def wait_event(
        self,
        method: str,
        predicate: Callable[[JSON], bool] = lambda _: True,
        *,
        since: int = 0,
        timeout: float = TIMEOUT,
    ) -> JSON:
        """The params of the first event ``method`` that ``predicate`` accepts, among the events received
        from index ``since`` of :attr:`events` on (already received, or arriving within ``timeout``).

        Raises:
            BrowserTimeout: none within ``timeout``.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for name, params in self.events[since:]:
                if name == method and predicate(params):
                    return params
            remaining = deadline - loop.time()
            if remaining <= 0:
                seen = sorted({name for name, _ in self.events})
                raise BrowserTimeout(f"no {method} event within {timeout} s (seen: {seen})")
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def navigate(self, url: str, *, timeout: float = TIMEOUT) -> None:
        """Load ``url`` and wait until the document is complete.

        Raises:
            CDPError: the navigation failed (``errorText``, e.g. connection refused).
        """
        since = len(self.events)
        result = await self.send("Page.navigate", {"url": url}, timeout=timeout)
        if result.get("errorText"):
            raise CDPError(f"navigating to {url}: {result['errorText']}")
        await self.wait_event("Page.loadEventFired", since=since, timeout=timeout)

    async def close(self) -> None:
        """Close the tab."""
        self.browser._pages.pop(self.session, None)
        await self.browser.send("Target.closeTarget", {"targetId": self.target})
