"""The commands that start servers on docs/http2.md, docs/howto/experiments.md, docs/websocket.md,
docs/demo.md and docs/howto/configure.md are run, and their output must be what the page says (issue 13,
item 6).

Each test runs its page's blocks with ``docrun.Shell``: a server the page starts in a terminal of its own
runs in the background on a free loopback port (the page's ``8000``, ``8443`` or ``33185`` become that port
through the shell's substitutions; a command that relies on the default port 8000 gets ``--port N``
appended), and is stopped with SIGINT, as a reader's Ctrl-C, which must exit 0. Outputs are compared with
the page's after ``docrun.normalise`` and the substitutions each test names (ports, ids, times).

curl and openssl are needed (``RAWRT_REQUIRE_BROWSER=1`` makes their absence a failure, as in
tests/test_doc_commands.py), nghttp and h2load too for docs/http2.md (``RAWRT_REQUIRE_NGHTTP2=1``).
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
from pathlib import Path

import docrun
import pytest

HTTP2_TEST = "tests/test_doc_pages.py::test_http2_page_commands"
EXPERIMENTS_TEST = "tests/test_doc_pages.py::test_experiments_page_commands"
WEBSOCKET_TEST = "tests/test_doc_pages.py::test_websocket_page_trace"
DEMO_TEST = "tests/test_doc_pages.py::test_demo_page_servers"
CONFIGURE_TEST = "tests/test_doc_pages.py::test_configure_page_servers"
#: The programs each CI variable promises (.ci/run sets both).
REQUIRE = {"curl": "RAWRT_REQUIRE_BROWSER", "openssl": "RAWRT_REQUIRE_BROWSER"}
REQUIRE |= {"nghttp": "RAWRT_REQUIRE_NGHTTP2", "h2load": "RAWRT_REQUIRE_NGHTTP2"}
BANNER = re.compile(r"listening on http://127\.0\.0\.1:(\d+)/")


def need(*programs: str) -> None:
    """Skip without a program a developer machine may lack; on CI (the variable set to 1) fail instead."""
    for name in programs:
        if shutil.which(name) is None:
            if os.environ.get(REQUIRE[name]) == "1":
                pytest.fail(f"{REQUIRE[name]}=1 but no `{name}` on PATH", pytrace=False)
            pytest.skip(f"no `{name}` on PATH; set {REQUIRE[name]}=1 to fail")


async def stop(shell: docrun.Shell, job: docrun.Background) -> None:
    """Ctrl-C, as the reader stops a server: it must exit 0 (a clean shutdown)."""
    assert await shell.stop(job) == 0, job.output()


def banner(job: docrun.Background) -> str:
    """The banner, the only line a server prints on stdout (its logs go to stderr)."""
    return docrun.normalise(job.out.read_text("utf-8").rstrip("\n"))


def commands(blocks: list[docrun.Block]) -> list[tuple[docrun.Block, docrun.Command]]:
    return [(block, command) for block in blocks for command in block.commands]


# ------------------------------------------------------------------------------------------ docs/http2.md


@pytest.mark.asyncio
async def test_http2_page_commands(tmp_path: Path) -> None:
    """Cleartext HTTP/2 with prior knowledge (curl, nghttp, h2load), then h2 and http/1.1 by ALPN over TLS."""
    need("curl", "openssl", "nghttp", "h2load")
    port, tls_port = docrun.free_port(), docrun.free_port()
    # The page's ports 8000 and 8443 are this run's free ports.
    subs = {"8000": str(port), "8443": str(tls_port)}
    shell = docrun.Shell(tmp_path, subs=subs)
    blocks = docrun.claimed(HTTP2_TEST)
    try:
        cleartext, tls = blocks
        demo, hello, events, nghttp, h2load = cleartext.commands
        job = await shell.start(demo.text, port=port)
        shell.mark(cleartext, demo)

        assert hello.comment == "Hello, world!"
        assert (await shell.run(hello.text)).out == "Hello, world!"
        version = await shell.run(hello.text + " -o /dev/null -w '%{http_version}'")
        assert version.out == "2"  # HTTP/2 indeed, not an HTTP/1.1 answer
        shell.mark(cleartext, hello)

        assert events.comment.startswith("an event stream, one DATA frame per event")
        stream = await shell.stream(events.text + " -w '[%{http_version}]'")
        assert re.fullmatch(r"id: \d+\n\n\[2\]", stream.out), stream  # the id-only event a stream starts with
        shell.mark(cleartext, events)

        assert nghttp.comment == "every frame, both ways"
        frames = (await shell.run(nghttp.text)).out
        for frame in (
            "send SETTINGS",
            "recv SETTINGS",
            "send HEADERS",
            "recv HEADERS",
            "recv DATA",
            "send GOAWAY",
        ):
            assert f"] {frame} frame <" in frames, frames
        assert "[SETTINGS_MAX_CONCURRENT_STREAMS(0x03):100]" in frames  # rawrt's, as the page's table says
        shell.mark(cleartext, nghttp)

        assert h2load.comment == "10 connections x 10 streams in flight"
        load = (await shell.run(h2load.text, timeout=60)).out
        assert "10 total client(s). 10000 total requests" in load, load
        assert "Application protocol: h2c" in load, load
        assert "requests: 10000 total, 10000 started, 10000 done, 10000 succeeded, 0 failed" in load, load
        shell.mark(cleartext, h2load)
        await stop(shell, job)

        openssl, tls_demo, h2, h11 = tls.commands
        await shell.run(openssl.text)
        shell.mark(tls, openssl)
        job = await shell.start(tls_demo.text, port=tls_port)
        shell.mark(tls, tls_demo)
        for command, version_ in ((h2, "2"), (h11, "1.1")):
            assert command.comment.startswith("ALPN: " + {"2": "h2", "1.1": "http/1.1"}[version_])
            assert (await shell.run(command.text)).out == "Hello, world!"
            # curl's http_version is what ALPN settled on.
            assert (await shell.run(command.text + " -o /dev/null -w '%{http_version}'")).out == version_
            shell.mark(tls, command)
        await stop(shell, job)
        shell.done(blocks)
    finally:
        await shell.close()


# ------------------------------------------------------------------------------- docs/howto/experiments.md


def map_ids(page: str, got: str) -> str:
    """The page's event ids as this run's: the first id of each maps the others by the same offset, so the
    ids' relations (consecutive, the resume after the last one read) must hold as on the page."""
    page_ids, got_ids = re.findall(r"\b\d{16}\b", page), re.findall(r"\b\d{16}\b", got)
    assert page_ids and got_ids, got
    offset = int(got_ids[0]) - int(page_ids[0])
    return re.sub(r"\b\d{16}\b", lambda m: str(int(m.group()) + offset), page)


@pytest.mark.slow  # ~8 s: the burst of 1,000 long polls alone takes 3 s
@pytest.mark.asyncio
async def test_experiments_page_commands(tmp_path: Path) -> None:
    """The error line, the expect-continue exchange, the SSE resume, the burst's JSON and the TLS demo."""
    need("curl", "openssl")
    port = docrun.free_port()
    # The page's demo "already running" on 33185 is one this test starts on a free port; the TLS demo runs on
    # the default port 8000, here a free port too.
    tls_port = docrun.free_port()
    subs = {
        "127.0.0.1:33185": f"127.0.0.1:{port}",
        "demo --ssl-certfile": f"demo --port {tls_port} --ssl-certfile",
    }
    shell = docrun.Shell(tmp_path, subs=subs)
    blocks = docrun.claimed(EXPERIMENTS_TEST)
    try:
        error, expect, resume, burst, tls = blocks

        # Nothing listens on the discard port of the loopback: one line on stderr, exit status 2.
        (command,) = error.commands
        result = await shell.run(command.text, check=False)
        assert (result.code, result.out, result.err) == (2, "", command.output), result
        shell.mark(error, command)

        # Its own demo on a port of its own: the Host lines carry it, the times vary.
        (command,) = expect.commands
        result = await shell.run(command.text)
        own = re.search(r"Host: 127\.0\.0\.1:(\d+)\\r\\n", result.out)
        assert own is not None, result
        waited = [int(ms) for ms in re.findall(r"\b(\d+) ms\b", result.out)]
        assert len(waited) == 2 and waited[0] >= 500 and waited[1] < 500, waited  # 0.5 s, then none for 1.1

        def times(text: str) -> str:
            return re.sub(r"\b\d+ ms\b", "<n> ms", docrun.normalise(text))

        want = times(command.output.replace("127.0.0.1:42525", f"127.0.0.1:{own.group(1)}"))
        assert times(result.out) == want, result
        shell.mark(expect, command)

        job = await shell.start(f"python -m rawrt demo --port {port}", port=port)
        (command,) = resume.commands
        result = await shell.run(command.text)
        channel = re.search(r"sse-resume-[0-9a-f]{8}", result.out)
        assert channel is not None, result
        want = shell.sub(command.output).replace("sse-resume-b55b7c3e", channel.group())
        assert docrun.normalise(result.out) == docrun.normalise(map_ids(want, result.out)), result
        shell.mark(resume, command)

        (command,) = burst.commands
        result = await shell.run(command.text, timeout=60)
        assert docrun.like(command.output, result.out, numbers=True), result
        got = json.loads(result.out)
        assert got["clients"] == got["answered"] == got["requests"] == 1000, got
        assert (got["lost"], got["duplicates"], got["errors"]) == (0, 0, []), got
        assert got["answered_p50_ms"] <= got["answered_last_ms"] <= got["rerequested_ms"], got
        shell.mark(burst, command)
        await stop(shell, job)

        openssl, tls_demo = tls.commands
        await shell.run(openssl.text)
        shell.mark(tls, openssl)
        assert tls_demo.comment == "then open https://127.0.0.1:8000/"
        job = await shell.start(tls_demo.text, port=tls_port)
        # The certificate names 127.0.0.1 (subjectAltName), so a client that checks it against cert.pem
        # accepts it, as a browser does once told to; the page is served over HTTP/2, as the page then says.
        url = f"https://127.0.0.1:{tls_port}/"
        page = await shell.run(f"curl -s --cacert cert.pem -w '\\n%{{http_version}}' {url}")
        assert "<html" in page.out and page.out.endswith("\n2"), page
        await stop(shell, job)
        shell.mark(tls, tls_demo)
        shell.done(blocks)
    finally:
        await shell.close()


# ------------------------------------------------------------------------------------------ docs/websocket.md

#: A frame as --trace logs it, after the logger name.
FRAME = re.compile(
    r"(<<|>>) fin=([01]) rsv1=([01]) opcode=([A-Z]+) mask=([0-9a-f]{8}|-) len=(\d+) payload=(b.*)"
)


@pytest.mark.asyncio
async def test_websocket_page_trace(tmp_path: Path) -> None:
    """The demo with --trace and the echo client: the client's lines, and every frame of both in the log."""
    port = docrun.free_port()
    # The page's demo runs on the default port 8000: here a free port. The page's reader is in the
    # repository's root, where examples/ is.
    subs = {"rawrt demo --trace": f"rawrt demo --trace --port {port}", "127.0.0.1:8000": f"127.0.0.1:{port}"}
    subs["python examples/"] = f"python {docrun.ROOT}/examples/"
    shell = docrun.Shell(tmp_path, subs=subs)
    (block,) = blocks = docrun.claimed(WEBSOCKET_TEST)
    try:
        demo, client = block.commands
        job = await shell.start(demo.text, port=port)
        assert banner(job) == docrun.normalise(shell.sub(demo.output))
        shell.mark(block, demo)

        result = await shell.run(client.text)
        assert docrun.like(client.output, result.out, numbers=True), result  # the ping's round trip varies
        shell.mark(block, client)
        # The server logs its CLOSE before it closes TCP; the client may be done before that line is written.
        await job.wait_for(r"connection closed$")
        await stop(shell, job)

        frames = [
            FRAME.fullmatch(line.split(" rawrt.trace DEBUG ", 1)[-1]) for line in job.output().splitlines()
        ]
        got = [(m[1], m[4], m[2]) for m in frames if m]
        # The client's text, binary, a message in three frames, a ping and its close, and rawrt's answers.
        assert got == [
            ("<<", "TEXT", "1"), (">>", "TEXT", "1"), ("<<", "BINARY", "1"), (">>", "BINARY", "1"),
            ("<<", "TEXT", "0"), ("<<", "CONT", "0"), ("<<", "CONT", "1"), (">>", "TEXT", "1"),
            ("<<", "PING", "1"), (">>", "PONG", "1"), ("<<", "CLOSE", "1"), (">>", "CLOSE", "1"),
        ], got  # fmt: skip
        for m in filter(None, frames):
            assert (m[5] == "-") == (m[1] == ">>"), m.group()  # clients mask, servers never do
            assert len(ast.literal_eval(m[7])) == min(int(m[6]), 32), m.group()  # the first 32 payload bytes
        # The page's own examples of trace lines have the same shape.
        page = (docrun.ROOT / "docs" / "websocket.md").read_text("utf-8")
        examples = re.findall(r"^rawrt\.trace (.*)$", page, re.M)
        assert examples and all(FRAME.fullmatch(line) for line in examples), examples
        shell.done(blocks)
    finally:
        await shell.close()


# --------------------------------------------------------------------------------------------- docs/demo.md


async def start_any_port(shell: docrun.Shell, command: str) -> tuple[docrun.Background, int]:
    """Start a server on ``--port 0``: the port is the one its banner names."""
    line = shell.rewrite(command)
    n = len(shell.background)
    out, err = shell.cwd / f".bg{n}.out", shell.cwd / f".bg{n}.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            "bash", "-c", f"exec {line}", cwd=shell.cwd, env={**os.environ, "PYTHONPATH": str(docrun.ROOT)},
            stdin=asyncio.subprocess.DEVNULL, stdout=stdout, stderr=stderr, start_new_session=True,
        )  # fmt: skip
    job = docrun.Background(line, proc, out, err)
    shell.background.append(job)  # shell.close() kills it if the test fails
    match = await job.wait_for(BANNER.pattern)
    return job, int(match.group(1))


async def lab_wire(shell: docrun.Shell, stream: str, poll: str) -> str:
    """The page's ``curl -sN ... &`` while ``poll`` runs: what the stream printed, once it showed the
    poll's connection closed (every wait bounded)."""
    line = shell.rewrite(stream.removesuffix(" &"))
    proc = await asyncio.create_subprocess_exec(
        "bash", "-c", f"exec {line}", cwd=shell.cwd, stdout=asyncio.subprocess.PIPE, start_new_session=True
    )
    assert proc.stdout is not None
    text = ""

    async def until(mark: str) -> None:
        nonlocal text
        while mark not in text:
            assert proc.stdout is not None
            line = await proc.stdout.readline()
            assert line, f"the stream ended before {mark!r}:\n{text}"
            text += line.decode()

    try:
        # The lab page is open once "hello" came: the poll's records then come on this stream.
        await asyncio.wait_for(until("event: hello"), docrun.TIMEOUT)
        await shell.run(poll)
        await asyncio.wait_for(until('"kind":"closed"'), docrun.TIMEOUT)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        await proc.wait()
    return text.rstrip("\n")


@pytest.mark.asyncio
async def test_demo_page_servers(tmp_path: Path) -> None:
    """The demo on its default port and on --port 0, the lab's wire stream, the expect-continue experiment's
    JSON, and a publish answered 503 by a demo whose --hub Redis is down (a command of a block
    tests/test_doc_commands.py::test_demo_page_commands runs, which leaves this one to this test)."""
    need("curl")
    port = docrun.free_port()
    # The page's 8000 (and PORT, where it names none) is this run's free port.
    subs = {"127.0.0.1:8000": f"127.0.0.1:{port}", "127.0.0.1:PORT": f"127.0.0.1:{port}"}
    shell = docrun.Shell(tmp_path, subs=subs)
    blocks = docrun.claimed(DEMO_TEST)
    try:
        top, wire, expect = blocks
        default, any_port = top.commands
        assert default.comment == "http://127.0.0.1:8000/"
        # The default port is 8000, which a test must not take: the page's URL is checked against --help.
        assert "(default 8000;" in " ".join((await shell.run("python -m rawrt demo --help")).out.split())
        job = await shell.start(f"{default.text} --port {port}", port=port)
        assert banner(job) == f"rawrt demo listening on http://127.0.0.1:{port}/ (loop: <loop>)"
        await stop(shell, job)
        shell.mark(top, default)

        assert any_port.comment == "a free port; the banner says which"
        job, chosen = await start_any_port(shell, any_port.text)
        assert chosen != 0
        assert (await shell.run(f"curl -s http://127.0.0.1:{chosen}/hello")).out == "Hello, world!"
        await stop(shell, job)
        shell.mark(top, any_port)

        job = await shell.start(f"python -m rawrt demo --port {port}", port=port)
        stream, poll = wire.commands
        got = await lab_wire(shell, stream.text, poll.text)
        want = shell.sub(f"{stream.output}\n\n{poll.output}")

        # The request's size (98 on the page) is that of the head curl sent: it grows with the port's and
        # curl's version's lengths (Host, User-Agent).
        agent = re.search(r"curl/[0-9.]+", got)
        assert agent is not None, got
        head = f"GET /poll?lab=curl-demo-1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        head += f"User-Agent: {agent.group()}\r\nAccept: */*\r\n\r\n"
        want = want.replace('"size":98,', f'"size":{len(head)},').replace('"in":98,', f'"in":{len(head)},')

        def records(text: str) -> str:
            # The times and the client's port vary.
            return re.sub(r'"t":[\d.]+', '"t":<t>', re.sub(r'"conn":\d+', '"conn":<conn>', text))

        assert docrun.like(records(want), records(got)), got
        shell.mark(wire, stream)
        shell.mark(wire, poll)

        (command,) = expect.commands
        result = await shell.run(command.text)
        got_json = json.loads(result.out)
        first, second = got_json["exchanges"]
        assert first["waited_ms"] >= 500 and second["waited_ms"] < 500, got_json  # 0.5 s, then none for 1.1
        waited = re.compile(r'"waited_ms":[\d.]+')  # the wait varies; checked just above
        assert docrun.like(waited.sub("<ms>", shell.sub(command.output)), waited.sub("<ms>", result.out)), (
            result
        )
        shell.mark(expect, command)
        await stop(shell, job)

        # The page's publish to a demo whose Redis (127.0.0.1:6399 there) is down: no Redis listens on a
        # free port here. The answer's length grows with the port's digits.
        (block,) = [b for b in docrun.claimed("tests/test_doc_commands.py::test_demo_page_commands")
                    if any(DEMO_TEST in c.comment for c in b.commands)]  # fmt: skip
        (publish,) = [c for c in block.commands if f"(run by {DEMO_TEST.split('::')[0]}::" in c.comment]
        assert DEMO_TEST in publish.comment
        redis_port = docrun.free_port()
        assert "--hub redis://127.0.0.1:6399/0, nothing listening there" in publish.comment
        job = await shell.start(
            f"python -m rawrt demo --port {port} --hub redis://127.0.0.1:{redis_port}/0", port=port
        )
        result = await shell.run(publish.text)
        length = re.search(r"content-length: (\d+)", publish.output)
        assert length is not None
        want = publish.output.replace("127.0.0.1:6399", f"127.0.0.1:{redis_port}").replace(
            length.group(), f"content-length: {int(length.group(1)) + len(str(redis_port)) - 4}"
        )
        assert docrun.normalise(result.out) == docrun.normalise(want), result
        await stop(shell, job)
        shell.done(blocks)
    finally:
        await shell.close()


# -------------------------------------------------------------------------------- docs/howto/configure.md


#: The page's myapp.py: an app with one route, enough to see --root-path at work.
MYAPP = """\
from rawrt import App, Request, Response

app = App()


@app.get("/")
async def home(request: Request) -> Response:
    return Response.text("home")
"""


@pytest.mark.asyncio
async def test_configure_page_servers(tmp_path: Path) -> None:
    """``rawrt serve`` with the page's many flags, and the demo writing its access log as the page's
    logging.json and --access-log-format say."""
    need("curl")
    page = (docrun.ROOT / "docs" / "howto" / "configure.md").read_text("utf-8")
    config = re.search(r"```json\n(.*?)```", page, re.S)
    assert config is not None
    (tmp_path / "logging.json").write_text(config.group(1))
    (tmp_path / "myapp.py").write_text(MYAPP)
    port = docrun.free_port()
    # Tests bind the loopback only: the page's 0.0.0.0 is 127.0.0.1 here, and its port 8000 (the default
    # when the page names none) a free one.
    subs = {"--host 0.0.0.0 --port 8000": f"--host 127.0.0.1 --port {port}"}
    subs |= {"http://0.0.0.0:8000/": f"http://127.0.0.1:{port}/", "127.0.0.1:8000": f"127.0.0.1:{port}"}
    subs["rawrt demo --log-config"] = f"rawrt demo --port {port} --log-config"
    shell = docrun.Shell(tmp_path, subs=subs)
    blocks = docrun.claimed(CONFIGURE_TEST)
    try:
        serve_block, demo_block = blocks
        (serve,) = serve_block.commands
        job = await shell.start(serve.text, port=port)
        assert banner(job) == docrun.normalise(shell.sub(serve.output))
        # --root-path /api: the app's / is served under /api/.
        assert (await shell.run(f"curl -s http://127.0.0.1:{port}/api/")).out == "home"
        await stop(shell, job)
        shell.mark(serve_block, serve)
        # logging.json sent that request's access line to access.log, in the default format.
        assert '"GET /api/ HTTP/1.1" 200' in (tmp_path / "access.log").read_text()
        (tmp_path / "access.log").unlink()

        (demo,) = demo_block.commands
        job = await shell.start(demo.text, port=port)
        assert banner(job) == docrun.normalise(shell.sub(demo.output))
        await shell.run(f"curl -s http://127.0.0.1:{port}/hello")
        await stop(shell, job)
        shell.mark(demo_block, demo)
        # The line --access-log-format asks for, after logging.json's "%(asctime)s ".
        log = (tmp_path / "access.log").read_text().rstrip("\n")
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} GET /hello -> 200 \d+(\.\d+)? ms", log), (
            log
        )
        shell.done(blocks)
    finally:
        await shell.close()
