"""Showing a report (summary.Summary): Rich tables (plain text off a terminal), CSV, JSON."""

from __future__ import annotations

import csv
import sys
from typing import TYPE_CHECKING, TextIO

from rich.table import Table
from rich.text import Text

from retailpulse_cli.text.escape import safe
from retailpulse_cli.text.figures import plural, rate_text
from retailpulse_cli.ui.console import STATUS_STYLE, cell
from retailpulse_cli.ui.output import Output, print_json

if TYPE_CHECKING:
    from retailpulse_cli.jobs.report_counts import Summary

STORE_ROWS = 50  # the terminal table; --format csv/json list every store
CSV_COLUMNS = ("job_id", "store_id", "images", "ok", "failed", "unknown_store")


def fmt_duration(seconds: float | None) -> str:
    """Tenths under a minute (status.json times have millisecond resolution)."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def totals_line(summary: Summary) -> str:
    t = summary.totals()
    jobs, stores = plural(t["jobs"], "job"), plural(t["stores"], "store")
    return (
        f"{jobs}, {stores}, {plural(t['images'], 'image')}: "
        f"{t['ok']:,} ok, {t['failed']:,} failed, {plural(t['unknown_stores'], 'unknown store')}; "
        f"{fmt_duration(t['duration_s'])}"
    )


def jobs_table(summary: Summary) -> Table:
    table = Table(title="jobs", title_justify="left", box=None, pad_edge=False)
    # duration and img/s cover all of a job's runs (submit, resumes, retries): `runs`
    for col in ("job_id", "status", "images", "ok", "failed", "runs", "duration", "img/s"):
        table.add_column(col, justify="left" if col in ("job_id", "status") else "right")
    for j in summary.jobs:
        table.add_row(
            cell(j.job_id),
            Text(j.status, style=STATUS_STYLE.get(j.status, "")),
            f"{j.images:,}",
            f"{j.ok:,}",
            f"{j.failed:,}",
            f"{len(j.spans):,}",
            fmt_duration(j.duration_s),
            rate_text(j.images_per_s),
        )
    return table


def stores_table(summary: Summary) -> Table:
    stores = sorted(summary.stores().items(), key=lambda kv: (-kv[1].failed, kv[0]))
    table = Table(title="stores", title_justify="left", box=None, pad_edge=False)
    for col in ("store_id", "images", "ok", "failed", "unknown"):
        table.add_column(col, justify="left" if col == "store_id" else "right")
    for store_id, c in stores[:STORE_ROWS]:
        unknown = Text("yes", style="red") if c.unknown_store else Text("")
        table.add_row(cell(store_id), f"{c.images:,}", f"{c.ok:,}", f"{c.failed:,}", unknown)
    if len(stores) > STORE_ROWS:
        table.add_row("...", "", "", "", f"{len(stores) - STORE_ROWS:,} more (--format csv)")
    return table


def show(output: Output, summary: Summary) -> None:
    """The report for people: jobs, stores (most failures first), failures with samples."""
    out = output.out
    for why in summary.skipped:
        out.print(Text(f"skipped: {safe(why)}", style="yellow"))
    out.print(Text(totals_line(summary), style="bold"))
    out.print()
    out.print(jobs_table(summary))
    out.print()
    out.print(stores_table(summary))
    failures = summary.failures().to_json()
    if failures:
        out.print()
        out.print(Text("failures by code", style="italic"))
        for f in failures:
            out.print(Text.assemble((f"{safe(f['code'])}", "red"), f"  {f['count']:,}"))
            for url in f["samples"]:
                out.print(Text(f"    {safe(url)}"), soft_wrap=True)


def write_csv(summary: Summary, stream: TextIO) -> None:
    """One row per store per job (sum the rows by store_id for a store's total)."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for job in summary.jobs:
        for store_id, c in sorted(job.stores.items()):
            writer.writerow(
                [job.job_id, store_id, c.images, c.ok, c.failed, str(c.unknown_store).lower()]
            )
    stream.flush()


def write_json(summary: Summary) -> None:
    print_json(summary.to_json())


def write(summary: Summary, fmt: str, output: Output) -> None:
    """The report on stdout as `fmt` says: table, csv, json, or "" (nothing)."""
    if fmt == "json":
        write_json(summary)
    elif fmt == "csv":
        write_csv(summary, sys.stdout)
    elif fmt == "table":
        show(output, summary)
