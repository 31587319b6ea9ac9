"""The deployment commands the docs show, run for real (issue 13, item 6): README's first app and its
Redis-hub demo, docs/topics/hub-redis.md, and the two nginx how-tos, whose own ``nginx`` configuration text
runs in a real nginx in front of real rawrt nodes sharing a real ``redis-server``.

The pages' addresses become this run's (tests bind 127.0.0.1 only, on free ports): the nodes'
``10.0.0.1x:8000`` and ``0.0.0.0:8000``, Redis's ``10.0.0.5:6379`` and ``127.0.0.1:6379``, nginx's
``listen 80`` and ``127.0.0.1:8080``, and the ``proxy`` host. nginx runs unprivileged-style (``-p`` a
temporary prefix, the page's configuration wrapped in ``events {}`` and ``http {}`` with temporary paths),
in the foreground.

Skipped without ``curl``, ``redis-server`` or ``nginx`` unless ``RAWRT_REQUIRE_BROWSER``,
``RAWRT_REQUIRE_REDIS`` or ``RAWRT_REQUIRE_NGINX`` is 1 (``.ci/run`` sets them): on CI a missing program is
a failure.
"""

from __future__ import annotations

import asyncio
import configparser
import importlib.util
import json
import os
import re
import shutil
import time
from pathlib import Path

import docrun
import pytest
import websockets
from redis_server import RedisServer, require_redis_server

ROOT = docrun.ROOT
README = ROOT / "README.md"
HUB_REDIS = ROOT / "docs" / "topics" / "hub-redis.md"
SCALE_OUT = ROOT / "docs" / "howto" / "scale-out-with-redis.md"
PROXY = ROOT / "docs" / "howto" / "deploy-behind-a-proxy.md"
TIMEOUT = 10.0
#: The loop ``--loop auto`` picks: uvloop when it is importable (the test extra installs it).
LOOP = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
#: An event id: ms since 1970 times 1,024, plus a sequence number (rawrt.hub.ids).
ID = re.compile(r'\{"id":(\d{16})\}')


def program(name: str, require: str) -> str:
    """The program's path; a skip without it, a failure when ``require`` is 1 (CI)."""
    path = shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))
    if path is None:
        if os.environ.get(require) == "1":
            pytest.fail(f"{require}=1 but no `{name}` on PATH", pytrace=False)
        pytest.skip(f"no `{name}` on PATH; set {require}=1 to fail")
    return path


def curl() -> None:
    # As in test_doc_commands.py: .ci/run installs curl with chromium and sets RAWRT_REQUIRE_BROWSER.
    program("curl", "RAWRT_REQUIRE_BROWSER")


def fenced(page: Path, lang: str, after: str) -> str:
    """The first ```lang block of ``page`` after the text ``after``: the page's own file text."""
    text = page.read_text("utf-8")
    match = re.compile(rf"```{lang}\n(.*?)```", re.S).search(text, text.index(after))
    assert match is not None, f"{page}: no {lang} block after {after!r}"
    return match.group(1)


def replace(text: str, subs: dict[str, str]) -> str:
    """The page's text with this run's addresses; each of the page's must be there (no silent miss)."""
    for page, here in subs.items():
        assert page in text, f"{page!r} is no longer in the page's text"
        text = text.replace(page, here)
    return text


def block(blocks: list[docrun.Block], page: Path, lang: str = "sh", containing: str = "") -> docrun.Block:
    (found,) = [
        b
        for b in blocks
        if b.page == page and b.lang == lang and any(containing in c.text for c in b.commands)
    ]
    return found


async def get(port: int, target: str) -> tuple[int, bytes]:
    """One plain HTTP/1.1 GET (status, body), for checks the pages' commands do not make themselves."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        response = await asyncio.wait_for(reader.read(), TIMEOUT)
    finally:
        writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


async def gone(pid: int, timeout: float = TIMEOUT) -> bool:
    """Whether process ``pid`` ends within ``timeout`` seconds (a stopped supervisor's worker)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        stat = Path(f"/proc/{pid}/stat")
        if stat.exists() and stat.read_text().split(") ")[-1].startswith("Z"):
            return True  # exited, not yet reaped by whoever inherited it
        await asyncio.sleep(0.05)
    return False


def nginx_conf(prefix: Path, page_text: str) -> Path:
    """The page's ``http { }`` part wrapped into a whole configuration with every path under ``prefix``.

    One worker process, so that the round robin between the nodes is the plain rotation the scale-out page
    describes; the access log records which node answered each request ($upstream_addr)."""
    temp = "\n".join(
        f"    {kind}_temp_path {prefix / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # As root, nginx's workers would run as nobody, who cannot use the temporary directories.
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"{user}worker_processes 1;\npid {prefix / 'nginx.pid'};\nerror_log {prefix / 'error.log'};\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        "    log_format upstream '$request $status $upstream_addr';\n"
        f"    access_log {prefix / 'access.log'} upstream;\n"
        f"{temp}\n{page_text}}}\n",
        "utf-8",
    )
    return conf


def nginx_command(nginx: str, conf: Path) -> str:
    """nginx in a prefix of its own (``-e``: not even its start-up error log outside it)."""
    return f"{nginx} -p {conf.parent} -e {conf.parent / 'error.log'} -c {conf}"


async def check_nginx(shell: docrun.Shell, command: str) -> None:
    """``nginx -t``: the configuration, the page's with this run's addresses, is valid."""
    result = await shell.run(f"{command} -t")
    assert "syntax is ok" in result.err and "test is successful" in result.err, str(result)


def upstreams(prefix: Path, request: str) -> list[str]:
    """The nodes that answered ``request`` (its access log lines, in order)."""
    log = (prefix / "access.log").read_text("utf-8")
    return [entry.rpartition(" ")[2] for entry in log.splitlines() if entry.startswith(request)]


def event_id(text: str) -> int:
    """The id of a publish's answer, ``{"id":N}`` (nothing else)."""
    match = ID.fullmatch(text)
    assert match is not None, text
    return int(match.group(1))


async def after(seconds: float, shell: docrun.Shell, command: str) -> docrun.Result:
    """``command`` run ``seconds`` from now: what the reader types in another terminal meanwhile."""
    await asyncio.sleep(seconds)
    return await shell.run(command)


# ------------------------------------------------------------------------------------------------- README


@pytest.mark.asyncio
async def test_readme_first_app(tmp_path: Path) -> None:
    """README's first app: its python block as myapp.py, served by its command, answers /hello/{name}."""
    curl()
    (claimed,) = docrun.claimed("tests/test_doc_deploy.py::test_readme_first_app")
    (tmp_path / "myapp.py").write_text(fenced(README, "python", "## A first app"), "utf-8")
    port = docrun.free_port()
    shell = docrun.Shell(tmp_path, subs={"--port 8000": f"--port {port}"})  # the page's port: a free one
    try:
        (command,) = claimed.commands
        # The comment: "auto: uvloop when installed (pip install '.[uvloop]')".
        install = re.fullmatch(r"auto: uvloop when installed \((pip install .+)\)", command.comment)
        assert install is not None, command.comment
        docrun.check_pip_install(install.group(1))
        job = await shell.start(command.text, port=port)
        shell.mark(claimed, command)
        await job.wait_for(rf"^rawrt listening on http://127\.0\.0\.1:{port}/ \(loop: {LOOP}\)$")
        assert (await shell.run(f"curl -s http://127.0.0.1:{port}/hello/world")).out == "Hello, world!"
        assert await shell.stop(job) == 0
    finally:
        await shell.close()
    shell.done([claimed])


@pytest.mark.asyncio
async def test_redis_hub_demo(tmp_path: Path, redis_server: RedisServer) -> None:
    """README's demo on a Redis hub with two workers and hub-redis.md's node on the same Redis: both
    workers serve, and an event published on one is read on the others (SSE and poll); Ctrl-C stops the
    supervisor and every worker. Then hub-redis.md's memory-hub publish: its id comes from the start time."""
    curl()
    claimed = docrun.claimed("tests/test_doc_deploy.py::test_redis_hub_demo")
    readme = block(claimed, README)
    page_sh = block(claimed, HUB_REDIS)
    page_console = block(claimed, HUB_REDIS, "console")
    workers, node, memory = docrun.free_port(), docrun.free_port(), docrun.free_port()
    # The pages' Redis is this run's; their demos listen on the default 127.0.0.1:8000: here free ports.
    shell = docrun.Shell(
        tmp_path,
        subs={
            "--hub redis://127.0.0.1:6379/0": f"--port {workers} --hub {redis_server.url}",
            "--hub redis://10.0.0.5:6379/0": f"--port {node} --hub {redis_server.url}",
            "127.0.0.1:8000": f"127.0.0.1:{memory}",
        },
    )
    try:
        # hub-redis.md: the install (not run: it installs this checkout, and redis-py is no core dependency).
        install, demo = page_sh.commands
        docrun.check_pip_install(install.text)
        assert install.comment.endswith("never a core dependency"), install.comment
        config = configparser.ConfigParser()
        config.read(ROOT / "setup.cfg")
        assert "redis" not in config["options"].get("install_requires", ""), "redis-py became a dependency"
        shell.mark(page_sh, install)
        single = await shell.start(demo.text, port=node)
        shell.mark(page_sh, demo)

        # README: two workers on one port.
        (command,) = readme.commands
        assert command.comment == "two worker processes on one port", command.comment
        job = await shell.start(command.text, port=workers)
        shell.mark(readme, command)
        banner = await job.wait_for(
            rf"^rawrt demo listening on http://127\.0\.0\.1:{workers}/ \(loop: {LOOP}\), 2 workers "
            rf"\(pids (\d+), (\d+)\), hub {re.escape(redis_server.url)}$",
        )
        pids = [int(pid) for pid in banner.groups()]
        # Both serve: the kernel spreads connections over the workers' sockets (SO_REUSEPORT), by a hash of
        # the client's port: a few dozen connections reach both, or something is wrong.
        for _ in range(40):
            assert await get(workers, "/hello") == (200, b"Hello, world!")
            served = set(re.findall(r"\[worker (\d)\] rawrt\.access .*\"GET /hello ", job.output()))
            if served == {"1", "2"}:
                break
        else:
            raise AssertionError(f"one worker served every connection:\n{job.output()}")

        # One Redis: published on the workers' port, read there (SSE, replayed) and on the other node (poll).
        published = await shell.run(
            f"curl -s -X POST --data-binary hi 'http://127.0.0.1:{workers}/publish?channel=c'"
        )
        event = event_id(published.out)
        sse = await shell.stream(
            f"curl -sN 'http://127.0.0.1:{workers}/events?channel=c' -H 'Last-Event-ID: 0'", 0.5
        )
        # (+ "\n": the output comes with its last newline stripped)
        assert f"id: {event}\ndata: hi\n" in sse.out + "\n", sse.out
        status, body = await get(node, "/poll?channel=c&since=0")
        assert status == 200 and json.loads(body)["events"] == [{"channel": "c", "id": event, "data": "hi"}]

        # Ctrl-C: the supervisor stops every worker and exits 0.
        assert await shell.stop(job) == 0, job.output()
        for pid in pids:
            assert await gone(pid), f"worker {pid} still runs after the supervisor's Ctrl-C"
        assert await shell.stop(single) == 0, single.output()

        # hub-redis.md's console block: the memory hub's first id on a channel is start_id(start ms) + 1.
        before = int(time.time() * 1000)
        server = await shell.start(f"rawrt demo --port {memory}", port=memory)  # the page's 127.0.0.1:8000
        ready = int(time.time() * 1000)
        (step,) = page_console.commands
        result = await shell.run(step.text)
        shell.mark(page_console, step)
        for text in (step.output, result.out):  # the page's run and this one
            assert event_id(text) % 1024 == 1, text  # start_id = ms * 1024, then counts 1 by 1
        assert before <= event_id(result.out) // 1024 <= ready, (before, result.out, ready)
        assert await shell.stop(server) == 0
    finally:
        await shell.close()
    shell.done(claimed)


# ------------------------------------------------------------------------------- scale-out-with-redis.md


@pytest.mark.asyncio
async def test_scale_out_page(tmp_path: Path) -> None:
    """scale-out-with-redis.md: its redis.conf (password and all), two demo nodes and a four-worker
    ``serve`` node on it, its nginx configuration in front, then its curls through nginx."""
    curl()
    redis = require_redis_server()
    nginx = program("nginx", "RAWRT_REQUIRE_NGINX")
    claimed = docrun.claimed("tests/test_doc_deploy.py::test_scale_out_page")
    nodes_sh = block(claimed, SCALE_OUT, containing="rawrt demo")
    serve_sh = block(claimed, SCALE_OUT, containing="rawrt serve")
    try_sh = block(claimed, SCALE_OUT, containing="nginx -t")
    r, a, b, c, proxy = (docrun.free_port() for _ in range(5))
    shell = docrun.Shell(
        tmp_path, subs={"10.0.0.5:6379": f"127.0.0.1:{r}", "http://proxy/": f"http://127.0.0.1:{proxy}/"}
    )
    try:
        # Redis with the page's redis.conf, on this run's address.
        conf = replace(fenced(SCALE_OUT, "text", "in `redis.conf`:"), {"bind 10.0.0.5": "bind 127.0.0.1"})
        (tmp_path / "redis.conf").write_text(f"{conf}port {r}\ndir {tmp_path}\n", "utf-8")
        await shell.start(f"{redis} redis.conf", port=r)

        install, demo = nodes_sh.commands
        docrun.check_pip_install(install.text)
        # "without it a Redis URL fails": the node's command in a Python without redis-py (-S: no
        # site-packages; rawrt itself is stdlib-only and comes from PYTHONPATH).
        shell.subs["--host 0.0.0.0 --port 8000"] = f"--host 127.0.0.1 --port {a}"
        bare = shell.rewrite(demo.text).replace(" -m rawrt ", " -S -m rawrt ", 1)
        failed = await shell.run(bare, check=False)
        claim = re.search(r'without it a Redis URL fails: "(.+)"', install.comment)
        assert claim is not None, install.comment
        assert failed.code == 2 and claim.group(1) in failed.err, str(failed)
        assert "change-me" not in failed.err and "pip install '.[redis]'" in failed.err, failed.err
        shell.mark(nodes_sh, install)

        # Nodes 1 and 2 (the page's 10.0.0.11 and .12) run the page's demo command; node 3 (10.0.0.13) its
        # `serve --workers 4`. On 127.0.0.1, not the page's 0.0.0.0: tests bind loopback only.
        for port in (a, b):
            shell.subs["--host 0.0.0.0 --port 8000"] = f"--host 127.0.0.1 --port {port}"
            job = await shell.start(demo.text, port=port)
            await job.wait_for(rf"^rawrt demo listening on http://127\.0\.0\.1:{port}/ ")
            assert "change-me" not in job.output(), job.output()  # "Logs show it without the password"
        shell.mark(nodes_sh, demo)
        # "Your own application": the page says rawrt/demo.py does exactly what an app on a shared hub must
        # (open_backend() reads the $RAWRT_HUB that --hub sets for every worker), so the demo's app is it.
        (tmp_path / "myapp.py").write_text(
            "from rawrt.demo import create_app\n\napp = create_app()\n", "utf-8"
        )
        (serve,) = serve_sh.commands
        shell.subs["0.0.0.0:8000"] = f"127.0.0.1:{c}"
        shell.subs["--host 0.0.0.0 --port 8000"] = f"--host 127.0.0.1 --port {c}"
        job = await shell.start(serve.text, port=c)
        shell.mark(serve_sh, serve)
        # The supervisor's one line, as the page prints it (the password left out).
        said = re.search(r"\(`(rawrt listening on [^`]+)`\)", SCALE_OUT.read_text("utf-8"))
        assert said is not None
        expected = docrun.normalise(shell.sub(said.group(1)))
        banner = (await job.wait_for(r"^rawrt listening on .*$")).group()
        assert docrun.like(expected, docrun.normalise(banner)), (expected, banner)
        for n in range(1, 5):  # "each worker's log lines" name it, after the time
            await job.wait_for(rf"^\S+ \S+ \[worker {n}\] rawrt\.error INFO listening on ")
        assert "change-me" not in job.output(), job.output()

        # nginx: the page's configuration, its nodes and its port this run's.
        page_conf = replace(
            fenced(SCALE_OUT, "nginx", "## 3. nginx"),
            {
                "server 10.0.0.11:8000;": f"server 127.0.0.1:{a};",
                "server 10.0.0.12:8000;": f"server 127.0.0.1:{b};",
                "server 10.0.0.13:8000;": f"server 127.0.0.1:{c};",
                "listen 80;": f"listen 127.0.0.1:{proxy};",
            },
        )
        run_nginx = nginx_command(nginx, nginx_conf(tmp_path, page_conf))
        check, curl_one, sse, curl_two, longpoll = try_sh.commands
        # `nginx -t && nginx -s reload`: the test of this configuration, then, instead of reloading a
        # system nginx, starting one with it in the foreground.
        await check_nginx(shell, run_nginx)
        proxied = await shell.start(f"{run_nginx} -g 'daemon off;'", port=proxy)
        shell.mark(try_sh, check)

        # The publish answers its id, as the comment shows ({"id":1839569764892673} in the page's run).
        page_one = event_id(curl_one.comment)
        published = await shell.run(curl_one.text)
        shell.mark(try_sh, curl_one)
        one = event_id(published.out)
        # The SSE stream replays "one" and stays open, and "two", published meanwhile from another
        # terminal through another node, reaches it.
        assert sse.comment == 'replays "one", stays open' and curl_two.comment == "through another node"
        stream, two_published = await asyncio.gather(
            shell.stream(sse.text, 1.5), after(0.5, shell, curl_two.text)
        )
        shell.mark(try_sh, sse)
        shell.mark(try_sh, curl_two)
        two = event_id(two_published.out)
        assert stream.code == 28, str(stream)  # still open when curl's --max-time stopped it
        assert f"id: {one}\ndata: one\n\nid: {two}\ndata: two\n" in stream.out + "\n", stream.out
        first, second = upstreams(tmp_path, "POST /publish?channel=c ")
        assert first != second, (first, second)
        # The long poll from the page's id (its run's first publish): this run's first publish.
        shell.subs[str(page_one)] = str(one)
        result = await shell.run(longpoll.text)
        shell.mark(try_sh, longpoll)
        assert json.loads(result.out) == {
            "cursor": two,
            "events": [{"channel": "c", "id": two, "data": "two"}],
        }

        # "Repeat the POSTs: the X-Upstream header alternates between nodes, and the ids keep increasing."
        nodes, ids = [], []
        for _ in range(3):
            head = await shell.run(curl_one.text.replace("curl -s ", "curl -si ", 1))
            upstream = re.search(r"^x-upstream: (.+)$", head.out, re.M | re.I)
            match = ID.search(head.out)
            assert upstream is not None and match is not None, head.out
            nodes.append(upstream.group(1))
            ids.append(int(match.group(1)))
        assert sorted(nodes) == sorted(f"127.0.0.1:{port}" for port in (a, b, c)), nodes
        assert two < ids[0] < ids[1] < ids[2], ids

        assert await shell.stop(proxied) == 0, proxied.output()
        for job in shell.background[1:]:
            assert await shell.stop(job) == 0, job.output()  # the nodes, Ctrl-C
    finally:
        await shell.close()
    shell.done(claimed)


# ------------------------------------------------------------------------------ deploy-behind-a-proxy.md


@pytest.mark.asyncio
async def test_deploy_behind_a_proxy(tmp_path: Path) -> None:
    """deploy-behind-a-proxy.md: its nginx configuration in front of ``python -m rawrt demo``, and each of
    its curls through it (the SSE stream delivering an event published meanwhile, the long poll held until
    the next publish); WebSocket echo through it too, as its prose says."""
    curl()
    nginx = program("nginx", "RAWRT_REQUIRE_NGINX")
    (claimed,) = docrun.claimed("tests/test_doc_deploy.py::test_deploy_behind_a_proxy")
    demo, proxy = docrun.free_port(), docrun.free_port()
    shell = docrun.Shell(tmp_path, subs={"127.0.0.1:8080": f"127.0.0.1:{proxy}"})
    try:
        # The page's demo on 127.0.0.1:8000 and nginx on 127.0.0.1:8080: this run's ports.
        server = await shell.start(f"python -m rawrt demo --port {demo}", port=demo)
        page_conf = replace(
            fenced(PROXY, "nginx", "## The configuration"),
            {
                "server 127.0.0.1:8000;": f"server 127.0.0.1:{demo};",
                "listen 127.0.0.1:8080;": f"listen 127.0.0.1:{proxy};",
            },
        )
        run_nginx = nginx_command(nginx, nginx_conf(tmp_path, page_conf))
        await check_nginx(shell, run_nginx)  # "Check it with `nginx -t`"
        proxied = await shell.start(f"{run_nginx} -g 'daemon off;'", port=proxy)

        hello, sse, publish, longpoll = claimed.commands
        assert (await shell.run(hello.text)).out == "Hello, world!"
        shell.mark(claimed, hello)
        # "then publish from another terminal": the open stream gets the event as it is published (nginx
        # buffering it would hold it past the end of the stream). The stream starts at the channel's end
        # (no Last-Event-ID): the publish waits long enough for curl to be connected.
        assert sse.comment == "then publish from another terminal:"
        stream, published = await asyncio.gather(shell.stream(sse.text, 1.2), after(0.5, shell, publish.text))
        shell.mark(claimed, sse)
        shell.mark(claimed, publish)
        event = event_id(published.out)
        assert stream.code == 28, str(stream)
        assert f"id: {event}\ndata: two\n" in stream.out + "\n", stream.out
        # "ID: the id the publish answered; held until the next publish": answered by that publish.
        assert longpoll.comment == "ID: the id the publish answered; held until the next publish"
        shell.subs["since=ID"] = f"since={event}"
        three = publish.text.replace("-d two", "-d three")
        held, later = await asyncio.gather(shell.run(longpoll.text), after(0.3, shell, three))
        shell.mark(claimed, longpoll)
        three_id = event_id(later.out)
        assert json.loads(held.out) == {
            "cursor": three_id,
            "events": [{"channel": "c", "id": three_id, "data": "three"}],
        }

        # "for WebSocket, run the /ws ... examples with port 8080": the upgrade passes through nginx.
        async with websockets.connect(f"ws://127.0.0.1:{proxy}/ws", open_timeout=TIMEOUT) as ws:
            await ws.send("through nginx")
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "through nginx"

        assert await shell.stop(proxied) == 0, proxied.output()
        assert await shell.stop(server) == 0, server.output()
    finally:
        await shell.close()
    shell.done([claimed])
