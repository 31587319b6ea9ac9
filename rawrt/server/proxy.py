"""The client's address behind a trusted reverse proxy: ``X-Forwarded-For`` / ``X-Forwarded-Proto`` (the de
facto fields) and ``Forwarded`` (RFC 7239), believed only from the peers listed in ``forwarded_allow_ips``.

Anyone can send these fields, so they are read only when the TCP peer is a trusted proxy, and then from the
right: each proxy appends the address it received the request from, so the rightmost entry that is not
itself a trusted proxy is the client (uvicorn's and werkzeug's ProxyFix rule; RFC 7239 §7.4 warns that the
leftmost entries are whatever the client claimed).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable

from ..sansio.headers import Headers

__all__ = ["TrustedProxies", "forwarded"]

Address = tuple[str, int]


class TrustedProxies:
    """The ``forwarded_allow_ips`` list: addresses, networks (``10.0.0.0/8``), or ``"*"`` for any peer.

    Raises:
        ValueError: an entry is neither an address, a network nor ``"*"``.
    """

    def __init__(self, entries: Iterable[str]) -> None:
        self.any = False
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in entries:
            entry = entry.strip()
            if entry == "*":
                self.any = True
            elif entry:
                self.networks.append(ipaddress.ip_network(entry, strict=False))

    def __call__(self, host: str) -> bool:
        """Whether ``host`` (an address as text) is a trusted proxy."""
        if self.any:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False  # "unknown", an obfuscated node name (RFC 7239 §6.3), a Unix socket's ""
        return any(address in network for network in self.networks)


def _node(value: str) -> Address | None:
    """An RFC 7239 §6 node (``192.0.2.1``, ``192.0.2.1:80``, ``"[2001:db8::1]:80"``) or an
    X-Forwarded-For entry, as ``(host, port)`` (port 0 when absent); None for ``unknown`` or garbage."""
    value = value.strip().strip('"')
    if not value or value.lower() == "unknown" or value.startswith("_"):
        return None
    port = 0
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
    elif value.count(":") == 1:
        host, _, tail = value.partition(":")
        port = int(tail) if tail.isdigit() else 0
    else:
        host = value
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    return host, port


def _forwarded_elements(values: list[str]) -> list[dict[str, str]]:
    """RFC 7239 §4: ``Forwarded: for=a;proto=https, for=b`` as one dict per element, in order."""
    elements = []
    for value in values:
        for element in value.split(","):
            pairs: dict[str, str] = {}
            for pair in element.split(";"):
                name, eq, val = pair.partition("=")
                if eq:
                    pairs[name.strip().lower()] = val.strip().strip('"')
            elements.append(pairs)
    return elements


def forwarded(
    headers: Headers, peer: Address | None, scheme: str, trusted: Callable[[Address | None], bool]
) -> tuple[Address | None, str]:
    """The client's address and the scheme, from a trusted proxy's request.

    ``Forwarded`` wins over ``X-Forwarded-*`` when both are present (it is the standard one). Entries are
    walked from the right, skipping trusted proxies; if all are trusted, the leftmost is the client.

    Args:
        headers: the request's fields.
        peer: the TCP peer (a trusted proxy: the caller checked).
        scheme: the connection's own scheme.
        trusted: whether an address is a trusted proxy.
    """
    raw = headers.get_all("forwarded")
    if raw:
        elements = _forwarded_elements([v.decode("latin-1") for v in raw])
        nodes = [e.get("for", "") for e in elements]
        protos = [e.get("proto", "") for e in elements]
    else:
        nodes = [n for v in headers.get_all("x-forwarded-for") for n in v.decode("latin-1").split(",")]
        proto = headers.get("x-forwarded-proto")
        protos = [p.strip() for p in proto.split(",")] if proto else []
    client = peer
    for value in reversed(nodes):
        node = _node(value)
        if node is None:
            break
        client = node
        if not trusted(node):
            break
    if protos:
        proto = protos[-1].lower()
        if proto in ("http", "https", "ws", "wss"):
            scheme = {"ws": "http", "wss": "https"}.get(proto, proto)
    return client, scheme
