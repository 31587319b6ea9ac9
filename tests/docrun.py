"""Run the shell commands the docs show (issue 13, item 6): the pages cannot drift from what happens.

Every ``sh`` or ``console`` block in README.md and docs/ carries a marker just above it, in an HTML comment
the rendered page hides, that says who runs it:

* ``<!-- doc-test: tests/FILE.py::TEST -->``: that test runs every command of the block (``claimed()`` hands
  it its blocks, and ``Shell.done()`` checks that it ran each one);
* ``<!-- doc-test: .ci/run -->``: the commands appear verbatim in ``.ci/run``, which CI runs;
* ``<!-- doc-test: not run (REASON) -->``: the reason, in the page's own text.

``tests/test_doc_commands.py::test_every_block_is_claimed`` fails on a block without a marker, a marker
naming a test that does not exist or does not claim it, and a ``.ci/run`` command CI does not run.

A ``console`` block is ``$ command`` lines, each followed by its output; an ``sh`` block is commands only,
one per line (``\\`` continues a line). A command's comment (``  # ...``, outside quotes) is kept apart.

``Shell`` runs commands the way the page's reader would, with ``bash -c`` in a temporary directory, after
the substitutions the test gives (the page's ports and hosts become this run's free loopback ports: tests
bind 127.0.0.1 only). ``python`` is this interpreter and ``rawrt`` is ``python -m rawrt`` (the same program
as the console script, wherever pip put it). A server a page starts runs in the background until the test
stops it with SIGINT, as a reader's Ctrl-C would.
"""

from __future__ import annotations

import asyncio
import configparser
import contextlib
import importlib.metadata
import os
import re
import shlex
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
TIMEOUT = 20.0

FENCE = re.compile(
    r"(?:<!-- doc-test: (?P<mark>[^\n]+?) -->[ \t]*\n\n?)?```(?P<lang>sh|console)\n(?P<body>.*?)```", re.S
)
NOT_RUN = re.compile(r"not run \((?P<reason>.+)\)")


@dataclass(frozen=True)
class Command:
    text: str  # the command, continuation lines joined with a space
    comment: str  # the comment after it ("" when none), without the "#"
    output: str  # what a console block shows after it ("" for sh blocks)


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    lang: str
    mark: str | None
    commands: tuple[Command, ...]

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def reason(self) -> str | None:
        """Why the block is not run, when its marker says so."""
        match = NOT_RUN.fullmatch(self.mark or "")
        return match.group("reason") if match else None


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def split_comment(line: str) -> tuple[str, str]:
    """``cmd  # comment`` -> (cmd, comment): a ``#`` after a blank, outside quotes, starts a comment."""
    quote = ""
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and i > 0 and line[i - 1] in " \t":
            return line[:i].rstrip(), line[i + 1 :].strip()
    return line.rstrip(), ""


def parse(lang: str, body: str) -> tuple[Command, ...]:
    lines = body.splitlines()
    commands: list[Command] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if lang == "console":
            assert line.startswith("$ "), f"output before a command: {line!r}"
            line = line[2:]
        elif not line.strip() or line.lstrip().startswith("#"):
            continue
        text, comment = split_comment(line)
        while text.endswith("\\"):
            more, more_comment = split_comment(lines[i].strip())
            i += 1
            text = text[:-1].rstrip() + " " + more
            comment = comment or more_comment
        output: list[str] = []
        if lang == "console":
            while i < len(lines) and not lines[i].startswith("$ "):
                output.append(lines[i])
                i += 1
        commands.append(Command(text, comment, "\n".join(output).rstrip("\n")))
    return tuple(commands)


def blocks(page: Path) -> list[Block]:
    text = page.read_text("utf-8")
    found: list[Block] = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start("lang")) + 1
        commands = parse(match.group("lang"), match.group("body"))
        found.append(Block(page, line, match.group("lang"), match.group("mark"), commands))
    return found


def all_blocks() -> list[Block]:
    return [block for page in pages() for block in blocks(page)]


def claimed(test: str) -> list[Block]:
    """The blocks whose marker names ``test`` (``tests/FILE.py::NAME``)."""
    found = [block for block in all_blocks() if block.mark == test]
    assert found, f"no block in the docs is marked <!-- doc-test: {test} -->"
    return found


# ------------------------------------------------------------------------------------------------ matching


def like(expected: str, got: str, *, numbers: bool = False) -> bool:
    """Whether ``got`` reads as ``expected``: a line ``...`` or a ``...`` inside a line stands for anything;
    with ``numbers``, every number stands for any number and a run of blanks for any run (timings, sizes
    and the columns they widen)."""
    pattern = ""
    for piece in re.split(r"(\.\.\.|\d[\d,]*(?:\.\d+)?| +)", expected):
        if piece == "...":
            pattern += ".*?"
        elif numbers and piece and piece[0].isdigit():
            pattern += r"\d[\d,]*(?:\.\d+)?"
        elif numbers and piece.startswith(" "):
            pattern += " +"
        else:
            pattern += re.escape(piece)
    return re.fullmatch(pattern, got, re.S) is not None


def normalise(text: str) -> str:
    """What changes from run to run whatever the page: dates, curl's version, the banner's loop."""
    text = re.sub(r"^((?:\s*[<>] )?date: ).*?(\\r\\n)?$", r"\1<date>\2", text, flags=re.M)
    text = re.sub(r"curl/[0-9.]+", "curl/<version>", text)
    text = re.sub(r"\(loop: (asyncio|uvloop)", "(loop: <loop>", text)
    return text


# ------------------------------------------------------------------------------------------------ installs


def extras() -> dict[str, list[str]]:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    found: dict[str, list[str]] = {}
    for name, value in config["options.extras_require"].items():
        lines = (line.strip() for line in value.splitlines())
        found[name] = [line for line in lines if line and not line.startswith("#")]
    return found


def check_pip_install(command: str) -> None:
    """A page's ``pip install`` is not run here (tests make no traffic beyond loopback; .ci/run installs
    ``.[test]``): check that it installs this checkout (``.``, ``-e .``) or adds extras to the rawrt already
    installed from it (``'rawrt[redis]'``: rawrt is not on PyPI, pip takes the installed one), that the extras
    it names exist, and that what they bring is installed in the venv the tests run in."""
    words = shlex.split(command)
    assert words[:2] == ["pip", "install"], command
    targets = [w for w in words[2:] if not w.startswith("-")]
    assert len(targets) == 1, command
    target = targets[0]
    match = re.fullmatch(r"(\.|rawrt)(\[[a-z0-9,]+\])?", target)
    assert match, f"{command!r}: install this checkout, not {target!r}"
    assert match.group(1) == "." or match.group(2), f"{command!r}: rawrt is not on PyPI: install '.'"
    known = extras()
    for extra in re.findall(r"[a-z0-9]+", match.group(2) or ""):
        assert extra in known, f"{command!r}: setup.cfg has no extra {extra!r}"
        for requirement in known[extra]:
            name = re.split(r"[<>=!~ \[]", requirement)[0]
            importlib.metadata.version(name)  # raises when the extra's package is not installed


# ------------------------------------------------------------------------------------------------- running


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Result:
    command: str
    code: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"$ {self.command}\n[exit {self.code}]\n{self.out}\n[stderr]\n{self.err}"


@dataclass
class Background:
    command: str
    proc: asyncio.subprocess.Process
    out: Path
    err: Path

    def output(self) -> str:
        return self.out.read_text("utf-8", "replace") + self.err.read_text("utf-8", "replace")

    async def wait_for(
        self, pattern: str, *, stdout: bool = False, timeout: float = TIMEOUT
    ) -> re.Match[str]:
        """The first match of ``pattern`` (a regular expression, ``^``/``$`` per line) in what the job printed
        (stdout only, or stdout then stderr), once it is there; fails when the job exits first or after
        ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.out.read_text("utf-8", "replace") if stdout else self.output()
            match = re.search(pattern, text, re.M)
            if match is not None:
                return match
            assert self.proc.returncode is None, f"$ {self.command}: exited {self.proc.returncode}\n{text}"
            assert time.monotonic() < deadline, f"$ {self.command}: no {pattern!r} after {timeout} s\n{text}"
            await asyncio.sleep(0.05)


@dataclass
class Shell:
    """Runs a page's commands in ``cwd`` with ``subs`` applied (page text -> this run's text)."""

    cwd: Path
    subs: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    background: list[Background] = field(default_factory=list)
    ran: set[tuple[str, str]] = field(default_factory=set)

    def sub(self, text: str) -> str:
        for page, here in sorted(self.subs.items(), key=lambda item: -len(item[0])):
            text = text.replace(page, here)
        return text

    def rewrite(self, command: str) -> str:
        """The page's command as this shell runs it: substitutions, this python, the rawrt script."""
        command = self.sub(command)
        python = shlex.quote(sys.executable)
        command = re.sub(r"(^|&& |\| )python ", rf"\g<1>{python} ", command)
        command = re.sub(r"(^|&& |\| )rawrt ", rf"\g<1>{python} -m rawrt ", command)
        return command

    def _env(self) -> dict[str, str]:
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
        return {**os.environ, "PYTHONPATH": path, **self.env}

    def mark(self, block: Block, command: Command) -> None:
        self.ran.add((block.where, command.text))

    async def run(
        self,
        command: str,
        *,
        stdin: bytes | None = None,
        timeout: float = TIMEOUT,
        check: bool = True,
    ) -> Result:
        """Run one command to its end (bounded); with ``check``, fail unless it exits 0."""
        line = self.rewrite(command)
        proc = await asyncio.create_subprocess_exec(
            "bash", "-c", line, cwd=self.cwd, env=self._env(),
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True,
        )  # fmt: skip
        try:
            out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
        except TimeoutError:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            raise AssertionError(f"$ {line}: still running after {timeout} s") from None
        result = Result(
            line,
            proc.returncode if proc.returncode is not None else -1,
            out.decode("utf-8", "replace").replace("\r\n", "\n").rstrip("\n"),
            err.decode("utf-8", "replace").rstrip("\n"),
        )
        if check:
            assert result.code == 0, str(result)
        return result

    async def stream(self, command: str, seconds: float = 1.0) -> Result:
        """A command that streams until stopped (``curl -N``): what it printed within ``seconds``."""
        assert "curl" in command, command
        result = await self.run(f"{command} --max-time {seconds}", check=False)
        assert result.code in (0, 28), str(result)  # 28: curl's "operation timed out", the stop asked for
        return result

    async def start(
        self, command: str, *, port: int, host: str = "127.0.0.1", timeout: float = TIMEOUT
    ) -> Background:
        """Start a server the page runs in a terminal of its own; return once ``host:port`` accepts."""
        line = self.rewrite(command)
        n = len(self.background)
        out, err = self.cwd / f".bg{n}.out", self.cwd / f".bg{n}.err"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            proc = await asyncio.create_subprocess_exec(
                "bash", "-c", f"exec {line}", cwd=self.cwd, env=self._env(),
                stdin=asyncio.subprocess.DEVNULL, stdout=stdout, stderr=stderr, start_new_session=True,
            )  # fmt: skip
        job = Background(line, proc, out, err)
        self.background.append(job)
        deadline = time.monotonic() + timeout
        while True:
            if proc.returncode is not None:
                raise AssertionError(f"$ {line}: exited {proc.returncode} before listening\n{job.output()}")
            with contextlib.suppress(OSError):
                _reader, writer = await asyncio.open_connection(host, port)
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
                return job
            assert time.monotonic() < deadline, f"$ {line}: not listening on {host}:{port} after {timeout} s"
            await asyncio.sleep(0.05)

    async def stop(self, job: Background, *, timeout: float = TIMEOUT) -> int:
        """Ctrl-C: SIGINT, then the exit status (bounded; the process group is killed on a hang)."""
        if job.proc.returncode is None:
            job.proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(job.proc.wait(), timeout)
            except TimeoutError:
                os.killpg(job.proc.pid, signal.SIGKILL)
                await job.proc.wait()
                raise AssertionError(f"$ {job.command}: still running {timeout} s after SIGINT") from None
        return job.proc.returncode if job.proc.returncode is not None else -1

    async def close(self) -> None:
        """Stop whatever is still running (a failed test's servers), killing the process groups."""
        for job in self.background:
            if job.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(job.proc.pid, signal.SIGKILL)
                await job.proc.wait()

    def done(self, claimed_blocks: list[Block]) -> None:
        """Every command of the blocks was run (``mark()``ed): none left behind as the page grows."""
        missing = [
            f"{block.where}: {command.text}"
            for block in claimed_blocks
            for command in block.commands
            if (block.where, command.text) not in self.ran
        ]
        assert not missing, "commands the page shows but the test did not run:\n" + "\n".join(missing)
