"""The docs cannot drift from the code.

* ``docs/topics/state-diagrams.md`` is exactly what ``docs/tools/make_state_diagrams.py`` generates from the
  ``TRANSITIONS`` tables now.
* The import graph in ``docs/topics/design.md`` (between its marker comments) is exactly what
  ``docs/tools/make_import_graph.py`` generates from the source now.
* ``docs/topics/limits.md`` has a row for every field of :class:`rawrt.limits.Limits` (and for ``MAX_RECV``
  and ``MAX_CHUNK_SIZE_DIGITS``), and each row's default is the code's default.
* The code blocks marked ``# file: NAME.py`` in the tutorial and how-to guides run: each file is written to a
  temporary directory, imported, served on 127.0.0.1:0 and exercised the way the page says.
* Relative links between the Markdown files resolve.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import json
import re
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from types import ModuleType

import pytest

from rawrt import limits as limits_module
from rawrt.app import App
from rawrt.limits import DEFAULT_LIMITS, Limits
from rawrt.server import Server
from rawrt.websocket import connect

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
TIMEOUT = 5.0


# ------------------------------------------------------------------------------------------ state diagrams


def load_path(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_state_diagrams_are_generated_from_the_tables() -> None:
    tool = load_path("make_state_diagrams", DOCS / "tools" / "make_state_diagrams.py")
    expected = tool.render()
    assert isinstance(expected, str)
    current = (DOCS / "topics" / "state-diagrams.md").read_text("utf-8")
    assert current == expected, "run: python docs/tools/make_state_diagrams.py"


def test_import_graph_is_generated_from_the_code() -> None:
    tool = load_path("make_import_graph", DOCS / "tools" / "make_import_graph.py")
    expected = tool.render()
    assert isinstance(expected, str) and expected.startswith(tool.BEGIN)
    current = tool.current_block((DOCS / "topics" / "design.md").read_text("utf-8"))
    assert current == expected, "run: python docs/tools/make_import_graph.py"


def test_state_diagrams_show_every_transition() -> None:
    from rawrt.sansio import http11
    from rawrt.sansio.ws import connection as websocket

    text = (DOCS / "topics" / "state-diagrams.md").read_text("utf-8")
    for (_role, before, what), after in http11.TRANSITIONS.items():
        assert f"    {before.name} --> {after.name}: {what}\n" in text
    for (state, event), new in websocket.TRANSITIONS.items():
        assert f"    {state.name} --> {new.name}: {event.name}\n" in text


# ---------------------------------------------------------------------------------------------- limits table

_UNITS = {"": 1, "KiB": 1024, "MiB": 1024 * 1024, "s": 1}
_ROW = re.compile(r"^\| `(\w+)` \| ([^|]+?) \|", re.M)
_DEFAULT = re.compile(r"([0-9][0-9,]*(?:\.[0-9]+)?) ?(KiB|MiB|s)?")


def limits_rows() -> dict[str, str]:
    """``{name: default cell}`` for every table row of docs/topics/limits.md."""
    text = (DOCS / "topics" / "limits.md").read_text("utf-8")
    return {name: cell.strip() for name, cell in _ROW.findall(text)}


def parse_default(cell: str) -> float:
    match = _DEFAULT.fullmatch(cell)
    assert match is not None, f"default {cell!r}: write it as a number with KiB, MiB or s"
    return float(match.group(1).replace(",", "")) * _UNITS[match.group(2) or ""]


def test_limits_table_has_every_field() -> None:
    rows = limits_rows()
    missing = [f.name for f in dataclasses.fields(Limits) if f.name not in rows]
    assert not missing, f"docs/topics/limits.md has no row for {missing}"
    assert {"MAX_RECV", "MAX_CHUNK_SIZE_DIGITS"} <= rows.keys()


def test_limits_table_lists_nothing_else() -> None:
    known = {f.name for f in dataclasses.fields(Limits)} | {"MAX_RECV", "MAX_CHUNK_SIZE_DIGITS"}
    assert set(limits_rows()) <= known


@pytest.mark.parametrize("name", sorted(limits_rows()))
def test_limits_table_default_matches_the_code(name: str) -> None:
    if name.isupper():
        actual = getattr(limits_module, name)
    else:
        actual = getattr(DEFAULT_LIMITS, name)
    if actual is None:  # decided at run time (max_connections: from RLIMIT_NOFILE): the row says how
        assert limits_rows()[name].startswith("`None`"), name
        return
    assert isinstance(actual, (int, float))
    assert parse_default(limits_rows()[name]) == actual, name


# ------------------------------------------------------------------------------------------ runnable samples


def sample_files(page: Path) -> dict[str, str]:
    """The ``# file: NAME`` code blocks of a page, joined per file (``NAME (continued)`` blocks append)."""
    files: dict[str, str] = {}
    for block in re.findall(r"```python\n(.*?)```", page.read_text("utf-8"), re.S):
        match = re.match(r"# file: (\S+)", block)
        if match is not None:
            files[match.group(1)] = files.get(match.group(1), "") + block + "\n"
    return files


@contextmanager
def importable(tmp_path: Path, files: dict[str, str]) -> Iterator[None]:
    for name, source in files.items():
        (tmp_path / name).write_text(source, "utf-8")
    sys.path.insert(0, str(tmp_path))
    try:
        yield
    finally:
        sys.path.remove(str(tmp_path))
        for name in files:
            sys.modules.pop(name.removesuffix(".py"), None)


def app_of(module: ModuleType) -> App:
    app = module.app
    assert isinstance(app, App)
    return app


@asynccontextmanager
async def serving(app: App) -> AsyncIterator[int]:
    server = Server(app)
    await server.start("127.0.0.1", 0)
    try:
        yield server.port
    finally:
        await server.shutdown(timeout=2.0)


UPGRADE = (
    "Connection: upgrade, close\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
)


async def http(port: int, method: str, target: str, body: bytes = b"", extra: str = "") -> tuple[int, bytes]:
    """One request (``Connection: close`` unless ``extra`` says otherwise); the status and the body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    fields = extra or "Connection: close\r\n"
    head = f"{method} {target} HTTP/1.1\r\nHost: x\r\n{fields}Content-Length: {len(body)}\r\n\r\n"
    writer.write(head.encode() + body)
    data = await asyncio.wait_for(reader.read(), TIMEOUT)
    writer.close()
    status_line, _, rest = data.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def test_tutorial_has_its_files() -> None:
    files = sample_files(DOCS / "tutorial" / "chat.md")
    assert {"chat_ws.py", "listen_ws.py", "say_ws.py", "chat.py"} <= files.keys()


@pytest.mark.asyncio
async def test_tutorial_step_1_websocket_room(tmp_path: Path) -> None:
    """Step 1 as the page says: a listener left running hears each speaker, and each speaker hears itself."""
    with importable(tmp_path, sample_files(DOCS / "tutorial" / "chat.md")):
        chat_ws = importlib.import_module("chat_ws")
        listen_ws = importlib.import_module("listen_ws")
        say_ws = importlib.import_module("say_ws")
        async with serving(app_of(chat_ws)) as port:
            url = f"ws://127.0.0.1:{port}/chat"
            listener = asyncio.ensure_future(listen_ws.main(url, 2))
            await asyncio.sleep(0.1)  # the listener joins first, as in the second terminal
            assert await asyncio.wait_for(say_ws.main(url), TIMEOUT) == ["hello, room"]
            assert await asyncio.wait_for(say_ws.main(url, "again"), TIMEOUT) == ["again"]
            assert await asyncio.wait_for(listener, TIMEOUT) == ["hello, room", "again"]


@pytest.mark.asyncio
async def test_tutorial_chat_over_three_transports(tmp_path: Path) -> None:
    with importable(tmp_path, sample_files(DOCS / "tutorial" / "chat.md")):
        chat = importlib.import_module("chat")
        listen_ws = importlib.import_module("listen_ws")
        async with serving(app_of(chat)) as port:
            # Step 3 before anything is said: the stream opens with id 0, "nothing yet".
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
            assert b"text/event-stream" in head
            assert b"id: 0\n\n" in await asyncio.wait_for(reader.read(4096), TIMEOUT)
            writer.close()
            await writer.wait_closed()
            status, body = await http(port, "POST", "/say", b"hello from curl")
            assert status == 200
            first = json.loads(body)["id"]
            assert (
                first > 1024 * 1_700_000_000_000
            )  # from the start time, not 1: never reused after a restart
            # Step 2: the listener with ?since=0 replays the room's history.
            heard = await asyncio.wait_for(listen_ws.main(f"ws://127.0.0.1:{port}/chat?since=0", 1), TIMEOUT)
            assert [json.loads(m) for m in heard] == [
                {"channel": "room", "id": first, "data": "hello from curl"}
            ]
            ws = await connect(f"ws://127.0.0.1:{port}/chat?since={first}")
            # A bad ?since= is refused before the handshake.
            assert await http(port, "GET", "/chat?since=x", extra=UPGRADE) == (
                400,
                b"since must be an event id (a non-negative integer), not 'x'\n",
            )
            # Step 4: without since, at once with the cursor to start from; with it, held until an event.
            status, body = await http(port, "GET", "/poll")
            assert (status, json.loads(body)) == (200, {"cursor": first, "events": []})
            held = asyncio.ensure_future(http(port, "GET", f"/poll?since={first}"))
            # Step 3: the stream opens with the joining id (the last event), then carries the event.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
            assert b"text/event-stream" in head
            await asyncio.sleep(0.05)
            assert not held.done()
            await ws.send("hello, everyone")
            second = first + 1
            stream = b""
            while b"data: hello, everyone\n" not in stream:
                stream += await asyncio.wait_for(reader.read(4096), TIMEOUT)
            # (Each inside its own chunk of the chunked body.)
            assert f"id: {first}\n\n".encode() in stream
            assert f"id: {second}\ndata: hello, everyone\n".encode() in stream
            writer.close()
            await writer.wait_closed()
            status, body = await asyncio.wait_for(held, TIMEOUT)
            assert status == 200
            assert json.loads(body) == {
                "cursor": second,
                "events": [{"channel": "room", "id": second, "data": "hello, everyone"}],
            }
            echoed = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
            assert echoed["id"] == second
            await ws.close()


@pytest.mark.asyncio
async def test_howto_handlers_run(tmp_path: Path) -> None:
    with importable(tmp_path, sample_files(DOCS / "howto" / "write-a-handler.md")):
        handlers = importlib.import_module("handlers")
        async with serving(app_of(handlers)) as port:
            assert await http(port, "GET", "/items/7") == (200, b"item 7\n")
            assert (await http(port, "POST", "/items/7"))[0] == 405
            status, body = await http(port, "POST", "/greet", b'{"name": "Ada"}')
            assert (status, json.loads(body)) == (200, {"greeting": "Hello, Ada!"})
            assert (await http(port, "POST", "/greet", b"nope"))[0] == 400
            status, body = await http(port, "POST", "/upload", b"hello")
            assert json.loads(body)["size"] == 5
            status, body = await http(port, "GET", "/countdown")
            assert body == b"2\r\n3\n\r\n2\r\n2\n\r\n2\r\n1\n\r\n8\r\nliftoff\n\r\n0\r\n\r\n"
            status, body = await http(port, "GET", "/ticks")
            assert b"event: tick\nid: 2\ndata: tick 2\n\n" in body
            held = asyncio.ensure_future(http(port, "GET", "/wait"))
            await asyncio.sleep(0.05)
            handlers.news.set()
            assert await asyncio.wait_for(held, TIMEOUT) == (200, b"news!\n")
            assert (await http(port, "GET", "/shout", extra=UPGRADE))[0] == 400
            ws = await connect(f"ws://127.0.0.1:{port}/shout?name=ada", subprotocols=["shout.v1"])
            await ws.send("hello")
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "ada: HELLO"
            await ws.close()


# ------------------------------------------------------------------------------------------------------ links

_LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens (code blocks skipped)."""
    text = re.sub(r"```.*?```", "", page.read_text("utf-8"), flags=re.S)
    headings = re.findall(r"^#+ (.+)$", text, re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


#: The pages checked here (the other docs have their own owners and tests).
PAGES = [
    "README.md",
    "docs/index.md",
    "docs/http.md",
    "docs/http2.md",
    "docs/demo.md",
    "docs/topics/limits.md",
    "docs/topics/design.md",
    "docs/topics/state-diagrams.md",
    "docs/reference/api.md",
    "docs/howto/write-a-handler.md",
    "docs/howto/deploy-behind-a-proxy.md",
    "docs/howto/scale-out-with-redis.md",
    "docs/topics/hub.md",
    "docs/topics/hub-redis.md",
    "docs/tutorial/chat.md",
]


#: Pages that other engineers are writing at the same time as these: a link to one of them is allowed to
#: dangle until the page lands, and is checked like any other once it exists.
PENDING = {"docs/conformance.md", "docs/topics/memory.md"}


def markdown_files() -> list[Path]:
    return [ROOT / page for page in PAGES if (ROOT / page).exists()]


@pytest.mark.parametrize("page", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    for link in _LINK.findall(page.read_text("utf-8")):
        if "://" in link or link.startswith("mailto:"):
            continue
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists() and str(target.relative_to(ROOT)) in PENDING:
            continue
        assert target.exists(), f"{page.relative_to(ROOT)} links to missing {path}"
        if anchor and target.suffix == ".md":
            assert anchor in anchors(target), f"{page.relative_to(ROOT)}: no heading #{anchor} in {path}"
