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
LABEL_CHARS = 32  # longer codes are cut in the label; the bar's tooltip has them whole
NARROW = "560px"  # below this the chart's labels go above their bars and tables stack

CSS = f"""
body{{font:15px/1.4 system-ui,sans-serif;margin:2em auto;max-width:1080px;color:#222;
padding:0 1em}}
h1{{font-size:1.6em;margin-bottom:.2em}}h2{{font-size:1.15em;margin-top:1.8em}}
.sub{{color:#666;margin-top:0}}
.cards{{display:flex;flex-wrap:wrap;gap:12px}}
.card{{border:1px solid #ddd;border-radius:8px;padding:10px 16px;min-width:110px}}
.card .n{{font-size:1.6em;font-weight:600}}.card .l{{color:#666;font-size:.85em}}
.card.bad .n{{color:#c0392b}}.card.good .n{{color:#1e8449}}
.chart{{margin:.6em 0 1.2em;max-width:760px}}
.chart .row{{display:flex;align-items:center;gap:8px;margin:6px 0}}
.chart .code{{flex:0 0 var(--label);text-align:right;overflow:hidden;
text-overflow:ellipsis;white-space:nowrap}}
.chart .track{{flex:1;display:flex;align-items:center;gap:6px;min-width:0}}
.chart svg{{display:block;flex:none;height:22px;min-width:2px}}
.chart .count{{white-space:nowrap;font-variant-numeric:tabular-nums}}
.scroll{{overflow-x:auto}}
table{{border-collapse:collapse;width:100%}}th,td{{padding:5px 10px;border-bottom:1px solid #eee}}
th{{text-align:left;background:#f6f6f6}}td.n,th.n{{text-align:right;
font-variant-numeric:tabular-nums}}
td.url{{font-family:monospace;font-size:.85em;word-break:break-all}}
.none{{color:#888}}
@media (max-width:{NARROW}){{
.chart .row{{flex-wrap:wrap;gap:2px 8px}}.chart .code{{flex-basis:100%;text-align:left}}
table.stack thead{{display:none}}
table.stack,table.stack tbody,table.stack tr{{display:block}}
table.stack tr{{border:1px solid #ddd;border-radius:8px;margin:0 0 10px;padding:4px 0}}
table.stack td{{display:flex;justify-content:space-between;gap:1em;border:0;
padding:3px 12px;text-align:right}}
table.stack td::before{{content:attr(data-label);color:#666;font-weight:600;text-align:left;
word-break:normal;white-space:nowrap}}
}}
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
    """Horizontal bars, one per error code, longest first. Labels and numbers are text in
    the page (they never shrink with the window); each bar is an SVG scaled through its
    viewBox to its share of the room left once the longest number has its place, so on a
    phone the bars keep their proportions and every number stays beside its bar."""
    failures = summary.failures().to_json()
    if not failures:
        return '<p class="none">No failures.</p>'
    top = max(f["count"] for f in failures)
    longest = max(len(f["code"]) for f in failures)
    label = min(max(longest, 12), LABEL_CHARS)
    number_room = len(f"{top:,}") + 2  # in ch, with the gap
    rows = []
    for f in failures:
        code = escape(f["code"])
        shown = f["code"] if len(f["code"]) <= LABEL_CHARS else f["code"][: LABEL_CHARS - 1] + "…"
        share = f["count"] / top
        rows.append(
            f'<div class="row"><span class="code" title="{code}">{escape(shown)}</span>'
            f'<span class="track"><svg viewBox="0 0 100 22" preserveAspectRatio="none" '
            f'style="width:calc((100% - {number_room}ch) * {share:.4f})" aria-hidden="true">'
            f'<rect class="bar" width="100" height="22" fill="#c0392b"><title>{code}: '
            f'{f["count"]:,}</title></rect></svg><span class="count">{f["count"]:,}</span>'
            "</span></div>"
        )
    return (
        f'<div class="chart" role="img" aria-label="failures by error code" '
        f'style="--label:{label}ch">{"".join(rows)}</div>'
    )


Column = tuple[str, str]  # (heading, CSS class: "n" for numbers, "url", or "")


def _table(table_id: str, columns: list[Column], rows: list[list[str]]) -> str:
    """A table that scrolls inside its box when it is wider than the window, and on a
    phone stacks: each row a card, each cell labelled with its column (data-label)."""

    def attrs(kind: str) -> str:
        return f' class="{kind}"' if kind else ""

    head = "".join(f"<th{attrs(kind)}>{name}</th>" for name, kind in columns)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td{attrs(kind)} data-label="{name}">{value}</td>'
            for (name, kind), value in zip(columns, row, strict=True)
        )
        + "</tr>"
        for row in rows
    )
    return (
        f'<div class="scroll"><table id="{table_id}" class="stack">'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    )


def samples_table(summary: Summary) -> str:
    failures = summary.failures().to_json()
    if not failures:
        return ""
    columns = [("code", ""), ("images", "n"), ("sample URLs", "url")]
    rows = [
        [escape(f["code"]), f"{f['count']:,}", "<br>".join(escape(u) for u in f["samples"])]
        for f in failures
    ]
    return _table("samples", columns, rows)


def stores_table(summary: Summary) -> str:
    worst = sorted(
        ((s, c) for s, c in summary.stores().items() if c.failed),
        key=lambda kv: (-kv[1].failed, kv[0]),
    )[:TOP_STORES]
    if not worst:
        return '<p class="none">No store has a failed image.</p>'
    columns = [
        ("store", ""),
        ("images", "n"),
        ("ok", "n"),
        ("failed", "n"),
        ("unknown store", ""),
    ]
    rows = [
        [escape(s), f"{c.images:,}", f"{c.ok:,}", f"{c.failed:,}", "yes" if c.unknown_store else ""]
        for s, c in worst
    ]
    return _table("stores", columns, rows)


def jobs_table(summary: Summary) -> str:
    columns = [
        ("job", ""),
        ("status", ""),
        ("started", ""),
        ("images", "n"),
        ("failed", "n"),
        ("runs", "n"),
        ("duration", "n"),
        ("images/s", "n"),
    ]
    rows = [
        [
            escape(j.job_id),
            escape(j.status),
            escape(j.started_at or "-"),
            f"{j.images:,}",
            f"{j.failed:,}",
            f"{len(j.spans):,}",
            fmt_duration(j.duration_s),
            rate_text(j.images_per_s),
        ]
        for j in summary.jobs
    ]
    return _table("jobs", columns, rows)


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
