"""A WebSocket echo server, and a client for it, in one file.

Serve it from the repository root::

    python -m rawrt serve examples.ws_echo:app --port 8000 --trace

then run the client in another terminal (``python examples/ws_echo.py ws://127.0.0.1:8000/echo``), or any
WebSocket client (``python -m websockets ws://127.0.0.1:8000/echo``). ``--trace`` prints every frame on the
``rawrt.trace`` logger: direction, FIN, RSV1, opcode, mask key, length and the first payload bytes.
"""

from __future__ import annotations

import asyncio
import sys

from rawrt import App
from rawrt.websocket import WebSocket, connect

app = App()


@app.websocket("/echo", subprotocols=["echo.v1"])
async def echo(ws: WebSocket) -> None:
    """Each message goes back with its type: ``str`` as a text frame, ``bytes`` as a binary frame."""
    async for message in ws:
        await ws.send(message)
    # The loop ends when the peer closes; ws.close_code / ws.close_reason say how.


async def client(uri: str) -> None:
    """Send a text, a binary and a streamed message, ping, then close with 1000."""
    ws = await connect(uri, subprotocols=["echo.v1"])
    try:
        print("subprotocol:", ws.subprotocol, "| extensions:", ws.headers.get("sec-websocket-extensions"))
        await ws.send("Hello")
        print("text:", await ws.recv())
        await ws.send(b"\x00\x01\x02")
        print("binary:", await ws.recv())
        await ws.send(["one message ", "in three ", "frames"])  # RFC 6455 §5.4 fragmentation
        print("streamed:", await ws.recv())
        print(f"ping round trip: {await ws.ping() * 1000:.2f} ms")
    finally:
        await ws.close(1000, "done")
    print("closed:", ws.close_code, repr(ws.close_reason))


if __name__ == "__main__":
    asyncio.run(client(sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:8000/echo"))
