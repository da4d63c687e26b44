"""The report as one self-contained HTML page: inline CSS and SVG, no script, no network.
Every string from a job file (store ids, URLs, codes) goes through html.escape."""

from __future__ import annotations

import stat
import sys
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from retailpulse_cli.errors import ExitCode, RetailpulseError, StorageError
from retailpulse_cli.storage.job_dir import now_iso, write_atomic
from retailpulse_cli.text.figures import rate_text
from retailpulse_cli.ui.report_text import fmt_duration

if TYPE_CHECKING:
    from retailpulse_cli.jobs.report_counts import Summary

TOP_STORES = 10
BAR_HEIGHT, BAR_GAP, CHART_WIDTH = 22, 8, 760
LABEL_CHARS = 32  # longer codes are cut in the label; the bar's tooltip has them whole

CSS = """
body{font:15px/1.4 system-ui,sans-serif;margin:2em auto;max-width:1080px;color:#222;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:1.8em}
.sub{color:#666;margin-top:0}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{border:1px solid #ddd;border-radius:8px;padding:10px 16px;min-width:110px}
.card .n{font-size:1.6em;font-weight:600}.card .l{color:#666;font-size:.85em}
.card.bad .n{color:#c0392b}.card.good .n{color:#1e8449}
table{border-collapse:collapse;width:100%}th,td{padding:5px 10px;border-bottom:1px solid #eee}
th{text-align:left;background:#f6f6f6}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
td.url{font-family:monospace;font-size:.85em;word-break:break-all}
.none{color:#888}svg text{font:13px system-ui,sans-serif}
"""


def _card(label: str, value: object, kind: str = "") -> str:
    n = f"{value:,}" if isinstance(value, int) else escape(str(value))
    return f'<div class="card {kind}"><div class="n">{n}</div><div class="l">{label}</div></div>'


def totals_html(summary: Summary) -> str:
    t = summary.totals()
    cards = [
        _card("jobs", t["jobs"]),
        _card("stores", t["stores"]),
        _card("images", t["images"]),
        _card("ok", t["ok"], "good"),
        _card("failed", t["failed"], "bad" if t["failed"] else ""),
        _card("unknown stores", t["unknown_stores"], "bad" if t["unknown_stores"] else ""),
        _card("duration", fmt_duration(t["duration_s"])),
    ]
    return f'<div class="cards" id="totals">{"".join(cards)}</div>'


def chart_svg(summary: Summary) -> str:
    """Horizontal bars, one per error code, longest first."""
    failures = summary.failures().to_json()
    if not failures:
        return '<p class="none">No failures.</p>'
    top = max(f["count"] for f in failures)
    longest = max(len(f["code"]) for f in failures)
    label_width = 16 + 8 * min(max(longest, 12), LABEL_CHARS)  # ~8 px per character
    span = CHART_WIDTH - label_width - 70
    height = len(failures) * (BAR_HEIGHT + BAR_GAP) + BAR_GAP
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{CHART_WIDTH}" height="{height}" '
        f'role="img" aria-label="failures by error code">'
    ]
    for i, f in enumerate(failures):
        y = BAR_GAP + i * (BAR_HEIGHT + BAR_GAP)
        width = max(2, round(span * f["count"] / top))
        mid = y + BAR_HEIGHT / 2 + 4
        code = escape(f["code"])
        label = f["code"] if len(f["code"]) <= LABEL_CHARS else f["code"][: LABEL_CHARS - 1] + "…"
        parts.append(
            f'<text x="{label_width - 8}" y="{mid}" text-anchor="end">{escape(label)}</text>'
            f'<rect class="bar" x="{label_width}" y="{y}" width="{width}" '
            f'height="{BAR_HEIGHT}" fill="#c0392b" rx="3"><title>{code}: {f["count"]:,}'
            f"</title></rect>"
            f'<text x="{label_width + width + 6}" y="{mid}">{f["count"]:,}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def samples_table(summary: Summary) -> str:
    rows = "".join(
        f'<tr><td>{escape(f["code"])}</td><td class="n">{f["count"]:,}</td>'
        f'<td class="url">{"<br>".join(escape(u) for u in f["samples"])}</td></tr>'
        for f in summary.failures().to_json()
    )
    if not rows:
        return ""
    head = '<tr><th>code</th><th class="n">images</th><th>sample URLs</th></tr>'
    return f'<table id="samples">{head}{rows}</table>'


def stores_table(summary: Summary) -> str:
    worst = sorted(
        ((s, c) for s, c in summary.stores().items() if c.failed),
        key=lambda kv: (-kv[1].failed, kv[0]),
    )[:TOP_STORES]
    if not worst:
        return '<p class="none">No store has a failed image.</p>'
    head = (
        '<tr><th>store</th><th class="n">images</th><th class="n">ok</th>'
        '<th class="n">failed</th><th>unknown store</th></tr>'
    )
    rows = "".join(
        f'<tr><td>{escape(s)}</td><td class="n">{c.images:,}</td><td class="n">{c.ok:,}</td>'
        f'<td class="n">{c.failed:,}</td><td>{"yes" if c.unknown_store else ""}</td></tr>'
        for s, c in worst
    )
    return f'<table id="stores">{head}{rows}</table>'


def jobs_table(summary: Summary) -> str:
    head = (
        '<tr><th>job</th><th>status</th><th>started</th><th class="n">images</th>'
        '<th class="n">failed</th><th class="n">duration</th><th class="n">images/s</th></tr>'
    )
    rows = "".join(
        f"<tr><td>{escape(j.job_id)}</td><td>{escape(j.status)}</td>"
        f'<td>{escape(j.started_at or "-")}</td><td class="n">{j.images:,}</td>'
        f'<td class="n">{j.failed:,}</td><td class="n">{fmt_duration(j.duration_s)}</td>'
        f'<td class="n">{rate_text(j.images_per_s)}</td></tr>'
        for j in summary.jobs
    )
    return f'<table id="jobs">{head}{rows}</table>'


def render(summary: Summary) -> str:
    skipped = "".join(f'<p class="none">skipped: {escape(s)}</p>' for s in summary.skipped)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>retailpulse report</title><style>{CSS}</style></head><body>"
        f'<h1>retailpulse report</h1><p class="sub">generated {escape(now_iso())}</p>'
        f"{skipped}{totals_html(summary)}"
        f"<h2>Failures by error code</h2>{chart_svg(summary)}{samples_table(summary)}"
        f"<h2>Stores with the most failures (top {TOP_STORES})</h2>{stores_table(summary)}"
        f"<h2>Jobs</h2>{jobs_table(summary)}"
        "</body></html>\n"
    )


def write(summary: Summary, path: Path) -> None:
    """Write the page atomically (temp file + os.replace): never half a page. `-` is
    stdout; anything at FILE but a regular file (a device, a link, a folder) is refused:
    a rename would replace it, and as root that can be /dev/null."""
    if str(path) == "-":
        sys.stdout.write(render(summary))
        sys.stdout.flush()
        return
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise HtmlTargetError(f"--html {path}: {exc.strerror}") from None
    if mode is not None and not stat.S_ISREG(mode):
        raise HtmlTargetError(f"--html {path}: exists and is not a regular file; not replaced")
    try:
        write_atomic(path, render(summary).encode())
    except StorageError as exc:  # its hint is about --jobs-dir; this is about --html
        raise HtmlTargetError(f"--html: {exc.message}") from None


class HtmlTargetError(RetailpulseError):
    exit_code = ExitCode.STORAGE
    hint = "give --html a new or regular file's path, or - for stdout"
