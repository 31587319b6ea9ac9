"""The commands docs/demo.md and docs/howto/configure.md show are run, and their output must be what the
page says (issue 13, item 6).

Each ``console`` block of the page is a sequence of ``$ command`` lines, each followed by its output. The test
runs every command with ``bash`` against a fresh demo server on 127.0.0.1:0, in page order (the page builds on
its own earlier commands: it publishes ``first message``, then, as its prose says, ``second`` and ``third``),
and compares the output with the page's after normalising what changes from run to run:

* event ids: the page's come from its own run (``1839569693480961`` ...); ids are ``start + n`` in a fresh
  memory hub, so each of the page's ids maps to this run's by the same offset, in the commands too;
* the port (``127.0.0.1:8000``), ``date:`` values, the ETag's per-run epoch, curl's version.

A block that cannot run says so on the page, with the reason, in the text the test reads:
``<!-- doc-test: not run (reason) -->`` before it (none does today). A command that needs a setting of
its own (a demo whose Redis is down) names the test that runs it there in its comment:
``(run by tests/FILE.py::TEST)``, and that test must exist.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import sys
from pathlib import Path

import docrun
import pytest

from rawrt.demo import create_app
from rawrt.hub import Hub
from rawrt.hub.backends import MemoryBackend
from rawrt.limits import Limits
from rawrt.server import Server

ROOT = docrun.ROOT

DOCS = ROOT / "docs"
DEMO_TEST = "tests/test_doc_commands.py::test_demo_page_commands"
CONFIGURE_TEST = "tests/test_doc_commands.py::test_configure_page_commands"
TIMEOUT = 10.0
#: The id before the page's first event: its run's start (rawrt.hub.ids).
PAGE_START = 1839569693480960
#: Ids in the page: 16 digits (milliseconds since 1970 times 1,024).
ID = re.compile(r"\b18\d{14}\b")
#: A command the page shows that needs a setting of its own (a demo whose Redis is down) names, in its
#: comment, the test that runs it there.
RUN_ELSEWHERE = re.compile(r"\(run by (tests/\w+\.py)::(\w+)\)")


def test_every_block_is_claimed() -> None:
    """Every sh and console block in README.md and docs/ is run by a test, by .ci/run, or says why not."""
    ci = (ROOT / ".ci" / "run").read_text("utf-8")
    problems: list[str] = []
    for block in docrun.all_blocks():
        if not block.commands:
            problems.append(f"{block.where}: an empty block")
        elif block.mark is None:
            problems.append(f"{block.where}: no <!-- doc-test: ... --> marker")
        elif block.reason is not None:
            if len(block.reason) < 10:
                problems.append(f"{block.where}: 'not run' needs a reason, not {block.reason!r}")
        elif block.mark == ".ci/run":
            for command in block.commands:
                if command.text not in ci:
                    problems.append(f"{block.where}: .ci/run does not run {command.text!r}")
        else:
            path, _, name = block.mark.partition("::")
            source = ROOT / path
            if not (path.startswith("tests/") and source.is_file() and name):
                problems.append(f"{block.where}: the marker names no test file: {block.mark!r}")
                continue
            text = source.read_text("utf-8")
            if not re.search(rf"^(async )?def {re.escape(name)}\(", text, re.M):
                problems.append(f"{block.where}: {path} has no test {name}")
            elif f'"{block.mark}"' not in text:
                problems.append(f"{block.where}: {path} never asks for the blocks of {block.mark!r}")
    assert not problems, "\n".join(problems)


def normalise(text: str) -> str:
    text = docrun.normalise(text)
    text = re.sub(r'(\.)[0-9a-f]{8}(-reset)?"', r'\1<epoch>\2"', text)  # the ETag's per-run epoch
    return text


@pytest.mark.asyncio
async def test_demo_page_commands(tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        if os.environ.get("RAWRT_REQUIRE_BROWSER") == "1":
            pytest.fail("curl is not installed")
        pytest.skip("curl is not installed")
    limits = Limits()
    hub = Hub(limits, start=PAGE_START + 10_000_000)  # any start: the page's ids are mapped by offset
    server = Server(create_app(limits, MemoryBackend(hub)), limits)
    await server.start("127.0.0.1", 0)
    offset = hub.start - PAGE_START

    def this_run(text: str) -> str:
        text = text.replace("127.0.0.1:8000", f"127.0.0.1:{server.port}")
        return ID.sub(lambda m: str(int(m.group()) + offset), text)

    async def run(command: str) -> str:
        if "-sN " in command:
            command += " --max-time 1"  # an event stream: what it sends within a second
        proc = await asyncio.create_subprocess_exec(
            "bash",
            "-c",
            command,
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), TIMEOUT)
        return out.decode("utf-8", "replace").replace("\r\n", "\n").rstrip("\n")

    ran = 0
    try:
        for block in docrun.claimed(DEMO_TEST):
            for step in block.commands:
                if elsewhere := RUN_ELSEWHERE.search(step.comment):
                    path, name = elsewhere.groups()
                    assert re.search(rf"^async def {name}\(", (ROOT / path).read_text("utf-8"), re.M), step
                    continue
                command, expected = this_run(step.text), step.output
                if "If-None-Match" in command:
                    # The ETag carries a per-run epoch: ask for this run's, as a client would have.
                    url = re.search(r"'(http://[^']+)'", command)
                    assert url is not None
                    head = await run(f"curl -si '{url.group(1)}'")
                    etag = re.search(r'^etag: (".*")$', head, re.M)
                    assert etag is not None, head
                    command = re.sub(r"If-None-Match: \"[^\"]*\"", f"If-None-Match: {etag.group(1)}", command)
                got = normalise(await run(command))
                want = normalise(this_run(expected))
                assert got == want, f"$ {command}"
                ran += 1
                if "--data-binary 'first message'" in command:
                    # The page's prose: "second" and "third" follow on room1.
                    for text in ("second", "third"):
                        await run(
                            this_run(
                                f"curl -s -X POST --data-binary '{text}' 'http://127.0.0.1:8000/publish?channel=room1'"
                            )
                        )
    finally:
        await server.shutdown(timeout=2.0)
    assert ran >= 10


@pytest.mark.asyncio
async def test_configure_page_commands(tmp_path: Path) -> None:
    """The command-line mistakes the page lists, each one line and exit status 2, as printed there."""
    (tmp_path / "myapp.py").write_text("from rawrt import App\n\napp = App()\n")
    (tmp_path / "cert.pem").write_text("")  # present: the page's mistake is the missing key file
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()  # "while another server holds it"
    port = holder.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(DOCS.parent)}
    ran = 0
    try:
        for block in docrun.claimed(CONFIGURE_TEST):
            for step in block.commands:
                # `python -m rawrt` is the same program as the `rawrt` script (prog "rawrt"), wherever pip
                # put the script; the port the page says is in use is one this test holds.
                command, expected = step.text, step.output
                command = re.sub(r"^rawrt ", f"{sys.executable} -m rawrt ", command)
                command = command.replace("--port 8000", f"--port {port}")
                proc = await asyncio.create_subprocess_exec(
                    "bash", "-c", command, cwd=tmp_path, env=env,
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                )  # fmt: skip
                out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
                assert proc.returncode == 2, (command, err)
                assert out == b""
                want = expected.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
                assert err.decode().rstrip("\n") == want, command
                ran += 1
    finally:
        holder.close()
    assert ran == 6
