"""The commands of the tutorial (docs/tutorial/chat.md), of docs/howto/compare.md and README.md's first
block are run, and what they print is what the pages say (issue 13, item 6).

The tutorial's Python files are its ``# file: NAME.py`` blocks (``tests/test_docs.py`` imports and drives
them; here they are written to the working directory and run as the reader runs them, by their commands).
The page's port 8000 becomes a free loopback port, in the commands and in the files' default URLs.

compare's error lines and its ``--burst 1000`` run (a few seconds) are in the default run; its table runs
(about 45 s each with the defaults) are ``slow``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import time
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

import docrun
import pytest
from test_docs import sample_files

DOCS = docrun.DOCS
TUTORIAL = DOCS / "tutorial" / "chat.md"
COMPARE = DOCS / "howto" / "compare.md"
TUTORIAL_TEST = "tests/test_doc_tutorial.py::test_tutorial_page_commands"
README_TEST = "tests/test_doc_tutorial.py::test_readme_demo_command"
COMPARE_ERRORS_TEST = "tests/test_doc_tutorial.py::test_compare_page_errors"
COMPARE_BURST_TEST = "tests/test_doc_tutorial.py::test_compare_page_burst"
COMPARE_RUNS_TEST = "tests/test_doc_tutorial.py::test_compare_page_runs"
TIMEOUT = 10.0
#: The tutorial's example ids: "hello from curl", "hello, SSE", "anyone there?" (its prose's own run).
PAGE_ID = re.compile(r"\b18395701234565\d\d\b")


def need(program: str) -> None:
    """curl is a Debian package .ci/run installs (with chromium): there a missing one fails, as the browser
    tests' ``RAWRT_REQUIRE_BROWSER=1`` says; elsewhere the test is skipped."""
    if shutil.which(program) is None:
        if os.environ.get("RAWRT_REQUIRE_BROWSER") == "1":
            pytest.fail(f"RAWRT_REQUIRE_BROWSER=1 but no `{program}` on PATH")
        pytest.skip(f"no `{program}` on PATH")


def page_ids(text: str, ids: dict[int, int]) -> str:
    """The page's example ids in ``text`` replaced by this run's (``ids``: page id -> this run's)."""
    return PAGE_ID.sub(lambda m: str(ids[int(m.group())]), text)


async def until(job: docrun.Background, want: str, *, stdout: bool = False) -> str:
    """What ``job`` printed (its stdout, or stdout and stderr) once the text ``want`` is in it (bounded)."""
    return (await job.wait_for(re.escape(want), stdout=stdout)).string


async def client(shell: docrun.Shell, command: str, server_port: int) -> docrun.Background:
    """A client the page leaves running in a terminal of its own (a listener, ``curl -N``). It listens on no
    port: ``start()`` waits for the server's, which already accepts, so it returns at once."""
    return await shell.start(command, port=server_port)


def only(found: re.Match[str] | None) -> str:
    assert found is not None
    return found.group(1)


# ------------------------------------------------------------------------------------------------ tutorial


@pytest.mark.asyncio
async def test_tutorial_page_commands(tmp_path: Path) -> None:
    """Each step's commands, in page order, with what the commands' comments and the prose say happens."""
    need("curl")
    blocks = docrun.claimed(TUTORIAL_TEST)
    serve_ws, serve_chat, listen, events, poll = blocks
    page = TUTORIAL.read_text("utf-8")
    port = docrun.free_port()
    # The page's port is this run's free one, in the commands and in the files' default URLs.
    shell = docrun.Shell(
        tmp_path, subs={"127.0.0.1:8000": f"127.0.0.1:{port}", "--port 8000": f"--port {port}"}
    )
    for name, source in sample_files(TUTORIAL).items():
        (tmp_path / name).write_text(shell.sub(source), "utf-8")
    base = f"http://127.0.0.1:{port}"
    say = f"curl -s -X POST --data-binary '{{}}' {base}/say"
    try:
        # Step 1: the WebSocket room, and the banner the prose quotes.
        (command,) = serve_ws.commands
        server = await shell.start(command.text, port=port)
        shell.mark(serve_ws, command)
        banner = docrun.normalise(shell.sub(only(re.search(r"`(rawrt listening on [^`]+)` appears", page))))
        assert banner in docrun.normalise(await until(server, "rawrt listening on"))
        # "Run `python listen_ws.py` in a second terminal [...] in a third, run `python say_ws.py` (or
        # `python say_ws.py anything you like`)": the speaker prints its list, the listener each message.
        listener = await client(shell, "python listen_ws.py", port)
        await until(server, '"GET /chat HTTP/1.1" 101')  # the listener is in the room before anyone speaks
        assert (await shell.run("python say_ws.py")).out == "['hello, room']"
        assert (await shell.run("python say_ws.py anything you like")).out == "['anything you like']"
        await until(listener, "anything you like\n", stdout=True)
        assert await shell.stop(listener) == 0  # Ctrl-C: listen_ws.py ends quietly
        assert listener.out.read_text("utf-8") == "hello, room\nanything you like\n"
        assert await shell.stop(server) == 0

        # Step 2: the hub. The curl prints the event's id: big, from the server's start time.
        start, curl_say = serve_chat.commands
        server = await shell.start(start.text, port=port)
        shell.mark(serve_chat, start)
        started = time.time()
        out = (await shell.run(curl_say.text)).out
        shell.mark(serve_chat, curl_say)
        example = only(re.search(r"prints the new event's id, e\.g\. `([^`]+)`", page))
        assert docrun.like(example, out, numbers=True), out
        first = json.loads(out)["id"]
        assert abs(first // 1024 - started * 1000) < 60_000, "ids count milliseconds since 1970 times 1,024"

        # The listener with ?since=0 replays the history, then prints each new message.
        (command,) = listen.commands
        listener = await client(shell, command.text, port)
        shell.mark(listen, command)
        replay = only(re.search(r"and prints `(\{[^`]+\})`, then every new message", page))
        line = page_ids(replay, {1839570123456513: first}) + "\n"
        await until(listener, line, stdout=True)
        await shell.run(say.format("said live"))
        live = json.dumps({"channel": "room", "id": first + 1, "data": "said live"}, separators=(",", ":"))
        await until(listener, live + "\n", stdout=True)
        assert listener.out.read_text("utf-8") == line + live + "\n"
        # "Stop it, start it again with ?since= and the last id it printed: it prints only what was said
        # in between."
        assert await shell.stop(listener) == 0
        await shell.run(say.format("in between"))
        listener = await client(
            shell, f"python listen_ws.py 'ws://127.0.0.1:8000/chat?since={first + 1}'", port
        )
        between = json.dumps(
            {"channel": "room", "id": first + 2, "data": "in between"}, separators=(",", ":")
        )
        await until(listener, between + "\n", stdout=True)
        await asyncio.sleep(0.2)  # nothing else follows
        assert await shell.stop(listener) == 0
        assert listener.out.read_text("utf-8") == between + "\n"
        last = first + 2

        # Step 3: the event stream, watched in one terminal while the prose's curl says something.
        (command,) = events.commands
        watch = await client(shell, command.text, port)
        shell.mark(events, command)
        await until(watch, f"id: {last}\n\n", stdout=True)  # joined: the last event so far
        await shell.run(only(re.search(r"say something \(`(curl [^`]+)`\)", page)))
        shown = only(re.search(r"The first terminal shows something like:\n\n```text\n(.*?)```", page, re.S))
        shown = page_ids(shown, {1839570123456513: last, 1839570123456514: last + 1})
        await until(watch, shown, stdout=True)
        await asyncio.sleep(0.2)  # nothing else follows
        await shell.stop(watch)  # curl ends on Ctrl-C
        assert watch.out.read_text("utf-8") == shown
        last += 1

        # Step 4: a poll without since answers at once with the cursor; with it, it is held until a say.
        at_once, held = poll.commands
        assert at_once.comment == 'at once: {"cursor":N,"events":[]}', at_once.comment
        began = time.monotonic()
        out = (await shell.run(at_once.text)).out
        shell.mark(poll, at_once)
        assert time.monotonic() - began < 5.0, "not at once (the poll holds for 25 s)"
        assert out == at_once.comment.removeprefix("at once: ").replace("N", str(last))
        cursor = json.loads(out)["cursor"]
        # The page's cursor is its own run's: ask with the one the first poll returned, as the comment says.
        assert held.comment == "the cursor you got: held", held.comment
        asking = asyncio.ensure_future(shell.run(page_ids(held.text, {1839570123456514: cursor}), timeout=30))
        shell.mark(poll, held)
        await asyncio.sleep(0.5)
        assert not asking.done(), "the poll with since= is answered before anything was said"
        await shell.run(say.format("anyone there?"))
        answer = only(re.search(r"then prints e\.g\.\n`([^`]+)`", page))
        assert (await asyncio.wait_for(asking, TIMEOUT)).out == page_ids(
            answer, {1839570123456515: cursor + 1}
        )
        assert await shell.stop(server) == 0
    finally:
        await shell.close()
    shell.done(blocks)


# -------------------------------------------------------------------------------------------------- README


@pytest.mark.asyncio
async def test_readme_demo_command(tmp_path: Path) -> None:
    """``pip install . && python -m rawrt demo``: the install is checked (not run), the demo is run. The
    page's port 8000 may be taken here: ``--port`` with a free one is appended, and its default checked."""
    (block,) = docrun.claimed(README_TEST)
    (command,) = block.commands
    install, demo = command.text.split(" && ")
    docrun.check_pip_install(install)
    shell = docrun.Shell(tmp_path)
    port = docrun.free_port()
    try:
        # "Run the demo server (127.0.0.1:8000, it prints its URL)": its defaults, then the server itself.
        usage = (await shell.run(f"{demo} --help")).out
        assert "(default 127.0.0.1)" in usage and "(default 8000;" in usage, usage
        server = await shell.start(f"{demo} --port {port}", port=port)
        shell.mark(block, command)
        banner = f"rawrt demo listening on http://127.0.0.1:{port}/ (loop: <loop>)"
        assert banner in docrun.normalise(await until(server, "listening on http"))
        url = f"http://127.0.0.1:{port}/hello"
        with await asyncio.to_thread(urllib.request.urlopen, url, timeout=TIMEOUT) as response:
            assert (response.status, response.read()) == (200, b"Hello, world!")
        assert await shell.stop(server) == 0
    finally:
        await shell.close()
    shell.done([block])


# ------------------------------------------------------------------------------------------------- compare

#: A row of compare's table: technique, p50, p99, requests, bytes/event, server CPU, events, lost, dup.
ROW = re.compile(
    r"^(short polling \(1 s\)|long polling|SSE|WebSocket) +([\d.]+) +([\d.]+) +([\d,]+) +(\d+) B"
    r" +([\d.]+ s|n/a) +([\d,]+) +(\d+) +(\d+)$",
    re.M,
)


def number(text: str) -> int:
    return int(text.replace(",", ""))


def compare_normalise(text: str) -> str:
    """The loop compare's demo runs on: uvloop when it is installed, as on the page's machine."""
    return re.sub(r"loop (asyncio|uvloop)\)", "loop <loop>)", text)


@pytest.mark.asyncio
async def test_compare_page_errors(tmp_path: Path) -> None:
    """Each mistake is one line on stderr, exactly the page's, and exit status 2. The page's 18080 is this
    run's free port, where the comment's ``python -m http.server`` is started (127.0.0.1 only)."""
    (block,) = docrun.claimed(COMPARE_ERRORS_TEST)
    port = docrun.free_port()
    shell = docrun.Shell(tmp_path, subs={"18080": str(port)})
    try:
        for command in block.commands:
            other = re.fullmatch(
                r"while (python -m http\.server 18080 --bind 127\.0\.0\.1) runs", command.comment
            )
            if command.comment:
                assert other is not None, command.comment
                server = await shell.start(other.group(1), port=port)
            result = await shell.run(command.text, check=False)
            shell.mark(block, command)
            assert (result.code, result.out, result.err) == (2, "", shell.sub(command.output)), str(result)
            if command.comment:
                assert await shell.stop(server) == 0  # http.server ends on Ctrl-C with status 0
    finally:
        await shell.close()
    shell.done([block])


@pytest.mark.asyncio
async def test_compare_page_burst(tmp_path: Path) -> None:
    """``--burst 1000`` (about 3 s): the page's report, its numbers free but for those that must hold."""
    (block,) = docrun.claimed(COMPARE_BURST_TEST)
    (command,) = block.commands
    shell = docrun.Shell(tmp_path)
    try:
        await check_burst(shell, command.text, command.output)
        shell.mark(block, command)
    finally:
        await shell.close()
    shell.done([block])


async def check_burst(shell: docrun.Shell, command: str, expected: str) -> None:
    out = compare_normalise((await shell.run(command, timeout=60)).out)
    assert docrun.like(compare_normalise(expected), out, numbers=True), out
    clients = number(only(re.search(r"--burst (\d+)", command)))
    n = f"{clients:,}"
    assert f"\nanswered          {n} of {n} in " in out, out
    assert f"\nrequests          {n} (one re-request per client)\n" in out, out
    total, each = map(number, re.findall(r"([\d,]+) B", only(re.search(r"^bytes +(.*)$", out, re.M))))
    assert total == clients * each, out
    assert out.endswith("\nlost / dup        0 / 0 (a second publish, which every re-request must get)"), out


def check_table(
    result: docrun.Result, page_output: str, *, clients: int, seconds: int, url: str | None
) -> None:
    """A table run: the page's text (``like``, numbers free), and exactly what must hold whatever the
    machine: every client got every event once (100 ms apart, so 10 an s), SSE and WebSocket one request per
    client, the server's CPU only when compare started the server, one progress line per technique."""
    out = compare_normalise(result.out)
    head = re.match(
        rf"rawrt compare: {clients} clients per technique, one event every 100 ms for {seconds} s, server "
        r"(http://127\.0\.0\.1:\d+/)( \(started by compare: pid (\d+), loop <loop>\))?\n",
        out,
    )
    assert head is not None, out
    if url is None:
        assert head.group(2) is not None, out
        # "starts its own demo on a free port, stops it after"
        assert not Path(f"/proc/{head.group(3)}").exists(), f"compare's demo (pid {head.group(3)}) still runs"
        assert docrun.like(compare_normalise(page_output), out, numbers=True), out
    else:
        assert (head.group(1), head.group(2)) == (url, None), out
        # The page's run is compare's own demo; after the table, the same explanation.
        notes = page_output[page_output.index("\n\nlatency: ") :]
        assert out.endswith(notes), out
    rows = ROW.findall(out)
    assert [row[0] for row in rows] == ["short polling (1 s)", "long polling", "SSE", "WebSocket"], out
    for technique, _p50, _p99, requests, _bytes, cpu, events, lost, dup in rows:
        assert (number(events), lost, dup) == (clients * seconds * 10, "0", "0"), (technique, out)
        assert (cpu == "n/a") == (url is not None), (technique, out)
        if technique in ("SSE", "WebSocket"):
            assert number(requests) == clients, (technique, out)
    progress = [
        f"rawrt compare: {name}: opening {clients} clients"
        for name in ("short polling", "long polling", "SSE", "WebSocket")
    ]
    assert result.err.splitlines() == progress, result.err


def check_svg(path: Path, result: docrun.Result, title: str) -> None:
    """The chart: SVG, titled with the run's settings, its p50 bars the table's p50 column."""
    root = ET.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = [node.text for node in root.iter("{http://www.w3.org/2000/svg}text")]
    assert title in texts, texts
    bars = [node.text or "" for node in root.iter("{http://www.w3.org/2000/svg}title")]
    names = {
        "short polling (1 s)": "short poll",
        "long polling": "long poll",
        "SSE": "SSE",
        "WebSocket": "WebSocket",
    }
    for row in ROW.findall(result.out):
        shown = only(re.search(rf"^{names[row[0]]}: ([\d.]+) ms$", "\n".join(bars), re.M))  # the first: p50
        assert abs(float(shown) - float(row[1])) <= 0.051, (row, bars)


@pytest.mark.slow
@pytest.mark.asyncio
async def test_compare_page_runs(tmp_path: Path) -> None:
    """The four ways to run compare at the top of the page, and the page's own run (with --svg). The table
    runs (about 45 s each with the defaults, 15 s with --seconds 3) run at once: each has its own server
    and its clients are cheap; only the burst, which waits for an idle CPU, runs alone."""
    usage, run = docrun.claimed(COMPARE_RUNS_TEST)
    defaults, given_url, small, burst = usage.commands
    (page_run,) = run.commands
    burst_block = docrun.claimed(COMPARE_BURST_TEST)[0]
    assert burst.text == burst_block.commands[0].text
    port = docrun.free_port()
    # The page's demo at 127.0.0.1:8000 is one started here on a free port.
    shell = docrun.Shell(tmp_path, subs={"127.0.0.1:8000": f"127.0.0.1:{port}"})
    (tmp_path / "small").mkdir()
    small_shell = docrun.Shell(tmp_path / "small")  # its compare.svg apart from the page run's
    try:
        assert given_url.comment.startswith("a demo that is already running"), given_url.comment
        demo = await shell.start(f"python -m rawrt demo --port {port}", port=port)
        results = await asyncio.gather(
            shell.run(defaults.text, timeout=240),
            shell.run(given_url.text, timeout=240),
            small_shell.run(small.text, timeout=240),
            shell.run(page_run.text, timeout=240),
        )
        for command in (defaults, given_url, small, burst):
            shell.mark(usage, command)
        shell.mark(run, page_run)
        out_defaults, out_url, out_small, out_page = results
        check_table(out_defaults, page_run.output, clients=100, seconds=10, url=None)
        check_table(out_url, page_run.output, clients=100, seconds=10, url=f"http://127.0.0.1:{port}/")
        assert demo.proc.returncode is None, "compare stopped a demo it did not start"
        assert await shell.stop(demo) == 0
        check_table(out_small, page_run.output, clients=20, seconds=3, url=None)
        check_svg(
            tmp_path / "small" / "compare.svg",
            out_small,
            "rawrt compare: 20 clients, one event every 100 ms for 3 s",
        )
        check_table(out_page, page_run.output, clients=100, seconds=10, url=None)
        # The page shows this run's chart: its alt text is the chart's title.
        alt = only(re.search(r"!\[rawrt compare, ([^]]+)\]\(compare\.svg\)", COMPARE.read_text("utf-8")))
        check_svg(tmp_path / "compare.svg", out_page, f"rawrt compare: {alt}")
        await check_burst(shell, burst.text, burst_block.commands[0].output)
    finally:
        await shell.close()
        await small_shell.close()
    shell.done([usage, run])
