"""The protocol lab's Experiments section in headless Chromium: each button is clicked and its result read.

One page runs the four experiments in turn (about 8 s): the ``Expect: 100-continue`` pair (RFC 9110
§15.2: the HTTP/1.0 exchange has no 1xx, the 1.1 one has ``100 Continue``), the SSE drop and resume (the
browser's own reconnect carries ``Last-Event-ID``, WHATWG HTML §9.2.4, and the missed events are
replayed once each), the long-poll burst with 10 clients, and the HTTP/1.1 connection limit (7 streams on a
page served over HTTP/1.1: not all open). The HTTP/2 side of the limit is tested in
``test_browser_h2.py``. Fixtures and helpers come from ``test_browser.py``.
"""

from __future__ import annotations

import pytest
from chromium import Browser
from test_browser import LAB_READY, browser, chromium, serve, server_errors, url

from rawrt.demo import create_app

__all__ = ["browser", "chromium"]  # the fixtures, re-used from test_browser.py

pytestmark = pytest.mark.browser


@pytest.mark.asyncio
async def test_lab_experiments_run_from_their_buttons(
    browser: Browser, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app()
    async with serve(app, browser) as server:
        page = await browser.new_page(f"{url(server)}/?channel=exp1")
        await page.wait_for(LAB_READY)

        # 1. Expect: 100-continue as HTTP/1.0 and as HTTP/1.1.
        await page.evaluate("document.getElementById('exp-expect-run').click()")
        await page.wait_for("rawrtLab.experiments.expect !== undefined")
        shown = await page.evaluate(
            "Object.fromEntries([...document.querySelectorAll('#exp-expect-result pre')]"
            ".map((e) => [e.dataset.version, e.textContent]))"
        )
        assert "POST /echo HTTP/1.0\\r\\n" in shown["1.0"] and "100 Continue" not in shown["1.0"]
        assert "POST /echo HTTP/1.1\\r\\n" in shown["1.1"] and "← HTTP/1.1 100 Continue\\r\\n" in shown["1.1"]
        assert "HTTP/1.1 200 OK" in shown["1.0"] and "HTTP/1.1 200 OK" in shown["1.1"]
        assert (await page.evaluate("document.getElementById('exp-expect-verdict').className")).endswith("ok")

        # 2. SSE: the server ends the stream, the browser resumes with Last-Event-ID, nothing is lost.
        await page.evaluate("document.getElementById('exp-sse-run').click()")
        await page.wait_for("rawrtLab.experiments.sse !== undefined", timeout=12.0)
        sse = await page.evaluate("rawrtLab.experiments.sse")
        assert sse["ok"] and sse["lost"] == 0 and sse["dup"] == 0 and len(sse["replayed"]) == 3, sse
        # The header as rawrt read it off the wire (the SSE lane's tap) is the id the page saw last.
        assert sse["lastEventIdRead"].lower() == f"last-event-id: {sse['lastEventId']}", sse
        steps = await page.evaluate("document.getElementById('exp-sse-steps').textContent")
        assert f"sending Last-Event-ID: {sse['lastEventId']}" in steps

        # 3. The long-poll burst, 10 clients held server-side.
        await page.evaluate(
            "document.getElementById('exp-burst-n').value = '10';"
            "document.getElementById('exp-burst-run').click()"
        )
        await page.wait_for("rawrtLab.experiments.burst !== undefined", timeout=10.0)
        burst = await page.evaluate("rawrtLab.experiments.burst")
        assert burst["answered"] == 10 and burst["requests"] == 10 and burst["lost"] == 0, burst
        facts = await page.evaluate("document.getElementById('exp-burst-facts').textContent")
        assert "10 of 10" in facts

        # 4. Over HTTP/1.1 the 7 streams cannot all open (6 connections per origin, 2 held by the lanes).
        proto = await page.evaluate("document.getElementById('exp-conns-proto').textContent")
        assert "HTTP/1.1 (http/1.1)" in proto
        await page.evaluate("document.getElementById('exp-conns-run').click()")
        await page.wait_for("rawrtLab.experiments.conns !== undefined")
        conns = await page.evaluate("rawrtLab.experiments.conns")
        assert conns["protocol"] == "http/1.1" and conns["opened"] == 7 and conns["open"] < 7, conns
    assert server_errors(caplog) == []
