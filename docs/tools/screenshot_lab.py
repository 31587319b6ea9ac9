"""Screenshot the demo's protocol lab (``GET /?ticker=1``) at 1280 and 390 px wide, with headless Chromium.

Usage: ``PYTHONPATH=. python docs/tools/screenshot_lab.py [OUTDIR]`` (default ``docs/img``): starts a demo
server on a free port, lets the ticker and a burst run a few seconds, and writes ``lab-1280.png`` and
``lab-390.png`` (one viewport each); then clicks the four experiments and writes the Experiments section,
whole, as ``lab-experiments-1280.png`` and ``lab-experiments-390.png``. Drives Chromium with the browser
tests' ``tests/browser/chromium.py``.
"""

from __future__ import annotations

import asyncio
import base64
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "browser"))

from chromium import Browser, Chromium  # noqa: E402

from rawrt.demo import create_app  # noqa: E402
from rawrt.server import Server  # noqa: E402

#: (width, viewport height, file name)
SHOTS = ((1280, 900, "lab-1280.png"), (390, 844, "lab-390.png"))


async def shoot(out: Path) -> None:
    executable = shutil.which("chromium")
    if executable is None:
        sys.exit("no `chromium` on PATH (Debian package `chromium`)")
    process = Chromium.launch(executable)
    app = create_app()
    server = Server(app)
    await server.start("127.0.0.1", 0)
    browser = await Browser.connect(process.browser_url)
    try:
        for width, height, name in SHOTS:
            page = await browser.new_page("about:blank")
            await page.send(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 500},
            )
            await page.navigate(f"http://127.0.0.1:{server.port}/?ticker=1")
            await page.wait_for("window.rawrtLab && Object.values(rawrtLab.lanes).every((l) => l.ready)")
            await page.evaluate("rawrtLab.publish('hello from the lab ✓')")
            await asyncio.sleep(1.0)
            await page.evaluate("document.getElementById('burst').click()")
            await asyncio.sleep(3.5)
            shot = await page.send("Page.captureScreenshot", {"format": "png"})
            (out / name).write_bytes(base64.b64decode(shot["data"]))
            print(f"wrote {out / name}")
            # One after the other where they share the server's throttle (expect-continue, burst).
            await page.evaluate("$('exp-expect-run').click()")
            await page.wait_for("rawrtLab.experiments.expect !== undefined", timeout=15.0)
            await page.evaluate("$('exp-sse-run').click(); $('exp-burst-run').click()")
            await page.wait_for("rawrtLab.experiments.burst !== undefined", timeout=15.0)
            await page.evaluate("$('exp-conns-run').click()")
            await page.wait_for(
                "['expect', 'sse', 'conns'].every((k) => rawrtLab.experiments[k] !== undefined)", timeout=15.0
            )
            box = await page.evaluate(
                "(() => { const r = document.getElementById('experiments').getBoundingClientRect();"
                " return [r.x + scrollX, r.y + scrollY, r.width, r.height]; })()"
            )
            x, y, w, h = box
            clip = {"x": x, "y": y, "width": w, "height": h, "scale": 1}
            shot = await page.send(
                "Page.captureScreenshot", {"format": "png", "clip": clip, "captureBeyondViewport": True}
            )
            section = out / name.replace("lab-", "lab-experiments-")
            section.write_bytes(base64.b64decode(shot["data"]))
            await page.close()
            print(f"wrote {section}")
    finally:
        await browser.close_pages()
        await browser.close()
        await server.shutdown(timeout=2.0)
        process.kill()


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "img"
    target.mkdir(parents=True, exist_ok=True)
    asyncio.run(shoot(target))
