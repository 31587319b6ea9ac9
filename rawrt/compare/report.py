"""What ``rawrt compare`` prints: the plain-text table (:func:`format_table`), the burst's report
(:func:`format_burst`), and the same figures as an SVG chart (:func:`svg_chart`). Formatting only: the
figures come in as :class:`~rawrt.compare.runs.Outcome` and :class:`~rawrt.compare.runs.BurstOutcome`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from xml.sax.saxutils import escape

from .runs import LABELS, BurstOutcome, Outcome, Settings, percentile

__all__ = ["format_table", "format_burst", "svg_chart"]


def _label(technique: str, settings: Settings) -> str:
    if technique == "poll":
        return f"short polling ({settings.poll_interval:g} s)"
    return LABELS[technique]


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


def format_table(outcomes: Sequence[Outcome], settings: Settings, where: str) -> str:
    """The plain-text table ``rawrt compare`` prints (columns separated by two spaces or more)."""
    header = [
        "technique",
        "p50 ms",
        "p99 ms",
        "requests",
        "bytes/event",
        "server CPU",
        "events",
        "lost",
        "dup",
    ]
    rows = [header]
    for o in outcomes:
        cpu = "n/a" if o.cpu_seconds is None else f"{o.cpu_seconds:.2f} s"
        size = "-" if math.isnan(o.bytes_per_event) else f"{o.bytes_per_event:.0f} B"
        rows.append(
            [
                _label(o.technique, settings),
                _ms(o.p50_ms),
                _ms(o.p99_ms),
                f"{o.requests:,}",
                size,
                cpu,
                f"{o.delivered:,}",
                str(o.lost),
                str(o.duplicates),
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [
        f"rawrt compare: {settings.clients} clients per technique, one event every "
        f"{1000 * settings.interval:g} ms for {settings.seconds:g} s, {where}",
        "",
    ]
    for r in rows:
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells).rstrip())
    lines += [
        "",
        "latency: publish to receive. requests: the clients' HTTP requests (an SSE stream or a WebSocket",
        "upgrade is one; the publisher's POSTs are not counted). bytes/event: what the clients read and",
        "wrote, heads and framing included, per event delivered. server CPU: the server process's user +",
        "system seconds while the technique ran. events: delivered. lost/dup: against the published ids.",
    ]
    for o in outcomes:
        lines += [f"{_label(o.technique, settings)}: error: {e}" for e in o.errors]
    return "\n".join(lines)


def format_burst(b: BurstOutcome, where: str) -> str:
    """The plain-text report of :func:`run_burst`."""
    a = b.answered_ms
    cpu = "n/a" if b.cpu_seconds is None else f"{b.cpu_seconds:.2f} s"
    answered = (
        f"{len(a):,} of {b.clients:,} in {a[-1]:.1f} ms (p50 {percentile(a, 0.5):.1f} ms, "
        f"p99 {percentile(a, 0.99):.1f} ms)"
        if a
        else f"0 of {b.clients:,}"
    )
    lines = [
        f"rawrt compare --burst: {b.clients:,} clients held on /longpoll, one publish, {where}",
        "",
        f"answered          {answered}",
        f"re-requested      all in {_ms(b.rerequested_ms)} ms (the last re-request written)",
        f"requests          {b.requests:,} (one re-request per client)",
        f"bytes             {b.bytes:,} B, {b.bytes / max(1, b.clients):.0f} B per client "
        "(the answer and the re-request, heads included)",
        f"server CPU        {cpu} (from the publish until 0.5 s after the last re-request)",
        f"client CPU        {b.client_cpu_seconds:.2f} s (this process, same window: in the times above)",
        f"lost / dup        {b.lost} / {b.duplicates} (a second publish, which every re-request must get)",
    ]
    lines += [f"error: {e}" for e in b.errors]
    return "\n".join(lines)


def _panel(
    x0: float,
    y0: float,
    title: str,
    values: list[tuple[str, float | None]],
    unit: str,
    log: bool,
) -> list[str]:
    """One bar panel, 250 x 245 with its labels, its top left corner at (x0, y0)."""
    width, top, height = 250.0, y0 + 30, 200.0
    out = [
        f'<text x="{x0 + width / 2:.1f}" y="{y0 + 14:.1f}" text-anchor="middle" font-weight="bold">'
        f"{escape(title)}</text>",
        f'<line x1="{x0}" y1="{top + height}" x2="{x0 + width}" y2="{top + height}" stroke="#333"/>',
    ]
    numbers = [v for _, v in values if v is not None and v > 0 and math.isfinite(v)]
    hi = max(numbers, default=1.0)
    if log:
        # The decade below the smallest value, so that no bar is zero high.
        lo = 10 ** (math.ceil(math.log10(min(numbers, default=1.0))) - 1)
        top_value = 10 ** math.ceil(math.log10(hi * 1.2))

        def scale(v: float) -> float:
            span = math.log10(top_value) - math.log10(lo)
            return height * (math.log10(max(v, lo)) - math.log10(lo)) / span if span else 0.0

        ticks = [10.0**k for k in range(round(math.log10(lo)), round(math.log10(top_value)) + 1)]
    else:
        top_value = hi * 1.25

        def scale(v: float) -> float:
            return height * v / top_value

        # A 1, 2 or 5 step that gives at most 6 gridlines.
        magnitude = 10 ** math.floor(math.log10(top_value / 6))
        step = next(m * magnitude for m in (1, 2, 5, 10) if top_value / (m * magnitude) <= 6)
        ticks = [k * step for k in range(int(top_value / step) + 1)]
    for tick in ticks:
        y = top + height - scale(tick)
        out.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x0 + width}" y2="{y:.1f}" stroke="#e2e8f0"/>')
        out.append(
            f'<text x="{x0 - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="10" fill="#555">{tick:g}</text>'
        )
    group = width / len(values)
    bar = group * 0.6
    for i, (label, value) in enumerate(values):
        bx = x0 + i * group + (group - bar) / 2
        cx = bx + bar / 2
        if value is None or not math.isfinite(value):
            out.append(
                f'<text x="{cx:.1f}" y="{top + height - 4}" text-anchor="middle" font-size="10">n/a</text>'
            )
        else:
            h = scale(value)
            out.append(
                f'<rect x="{bx:.1f}" y="{top + height - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{_COLORS[i]}"><title>{escape(label)}: {value:.4g} {unit}</title></rect>'
            )
            out.append(
                f'<text x="{cx:.1f}" y="{top + height - h - 3:.1f}" text-anchor="middle" '
                f'font-size="10">{_number(value)}</text>'
            )
        out.append(
            f'<text x="{cx:.1f}" y="{top + height + 14}" text-anchor="middle" font-size="10">'
            f"{escape(label)}</text>"
        )
    return out


def _number(value: float) -> str:
    # 1234 rather than 1.23e+03; three significant digits below 100.
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


_COLORS = ("#dd6b20", "#d69e2e", "#2b6cb0", "#2f855a")
_SHORT = {"poll": "short poll", "longpoll": "long poll", "sse": "SSE", "ws": "WebSocket"}


def svg_chart(outcomes: Sequence[Outcome], settings: Settings, where: str) -> str:
    """The table's figures as a hand-written SVG (900 x 600): five bar panels and the lost/dup counts."""
    names = [_SHORT[o.technique] for o in outcomes]

    def col(get: Callable[[Outcome], float | None]) -> list[tuple[str, float | None]]:
        return [(n, get(o)) for n, o in zip(names, outcomes, strict=True)]

    parts = [
        '<svg xmlns="http://www.w3.org/2000/svg" width="900" height="600" viewBox="0 0 900 600" '
        'font-family="sans-serif" font-size="12">',
        '<rect width="900" height="600" fill="white"/>',
        f'<text x="450" y="22" text-anchor="middle" font-size="15" font-weight="bold">rawrt compare: '
        f"{settings.clients} clients, one event every {1000 * settings.interval:g} ms for "
        f"{settings.seconds:g} s</text>",
        f'<text x="450" y="40" text-anchor="middle" font-size="11" fill="#555">{escape(where)}</text>',
        *_panel(50, 55, "latency p50 (ms, log)", col(lambda o: o.p50_ms), "ms", True),
        *_panel(345, 55, "latency p99 (ms, log)", col(lambda o: o.p99_ms), "ms", True),
        *_panel(640, 55, "HTTP requests (log)", col(lambda o: float(o.requests)), "requests", True),
        *_panel(50, 320, "bytes on the wire per event", col(lambda o: o.bytes_per_event), "B", False),
        *_panel(345, 320, "server CPU (s)", col(lambda o: o.cpu_seconds), "s", False),
        '<text x="765" y="334" text-anchor="middle" font-weight="bold">lost / duplicated events</text>',
    ]
    for i, (name, o) in enumerate(zip(names, outcomes, strict=True)):
        y = 380 + 30 * i
        color = "#2f855a" if o.lost == 0 and o.duplicates == 0 else "#c53030"
        parts.append(f'<rect x="660" y="{y - 11}" width="12" height="12" fill="{_COLORS[i]}"/>')
        parts.append(f'<text x="680" y="{y}">{escape(name)}</text>')
        parts.append(
            f'<text x="860" y="{y}" text-anchor="end" fill="{color}">{o.lost} / {o.duplicates}</text>'
        )
    notes = (
        "latency: publish to receive",
        "requests: the clients' (publisher's not counted)",
        "bytes: both directions, heads and framing",
        "CPU: the server process, while each ran",
    )
    for i, note in enumerate(notes):
        parts.append(f'<text x="650" y="{515 + 16 * i}" font-size="10" fill="#555">{escape(note)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
