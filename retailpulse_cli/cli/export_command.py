"""`retailpulse export --to URL [JOB_ID...] [--since WHEN]`: backfill a results database
from job directories (jobs/db_export.py does the work; this parses and renders)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from retailpulse_cli.cli.run_options import ConfigOpt

EPILOG = (
    "**Examples**\n\n`retailpulse export --to sqlite:////data/pulse.db`\n\n"
    "`retailpulse export --to postgresql://analyst@db:5432/pulse --since 7d`"
)


def export(
    to: Annotated[
        str,
        typer.Option(
            "--to",
            metavar="URL",
            help="The results database: sqlite:///FILE or postgresql://USER@HOST:PORT/DB "
            "(password from PGPASSWORD or ~/.pgpass).",
        ),
    ],
    job_ids: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[JOB_ID]...",
            help="Jobs to write. [default: every job in the jobs directory]",
            show_default=False,
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            metavar="WHEN",
            help="Only jobs created at or after WHEN: an ISO 8601 date or date-time, today, "
            "yesterday, or an age: 30m, 24h, 7d.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
    jobs_dir: Annotated[
        Path | None,
        typer.Option(
            "--jobs-dir",
            help="Where jobs live. [env: RETAILPULSE_JOBS_DIR; default: per-user data dir]",
            show_default=False,
        ),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print only data and errors.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Nothing more yet.")] = False,
    no_color: Annotated[bool, typer.Option("--no-color", help="No colour.")] = False,
    config_file: ConfigOpt = None,
) -> None:
    """Write existing jobs' records, status and store errors to a results database.

    Idempotent: rows are upserted on their primary keys, and a job the database is
    already level with is not read again. Prints `JOB_ID<TAB>ROWS<TAB>written|level`.
    Exit codes: 0 done, 2 bad usage or a database this installation cannot use,
    5 no such job, 7 database unreachable or damaged job.
    """
    from retailpulse_cli.cli import app as cli
    from retailpulse_cli.jobs import db_export
    from retailpulse_cli.ui import console
    from retailpulse_cli.ui.export_progress import RowsProgress

    cli._use_config(config_file)  # its jobs-dir
    if job_ids and since:
        raise typer.BadParameter("give job ids or --since, not both", param_hint="--since")
    url = checked_url(to)
    since_dt = cli.parse_since_option(since)
    output = cli._output(quiet, verbose, no_color)
    work = db_export.plan(cli._jobs_store(jobs_dir), job_ids or [], since_dt)
    for why in work.skipped:
        console.info_line(f"skipped: {why}")
    started = time.monotonic()
    with RowsProgress(output, work.records) as bar:
        done = db_export.export(url, work, bar.advance)
    _print(done, as_json)
    if not quiet:
        console.info_line(_summary(done, url, time.monotonic() - started))


def checked_url(text: str) -> str:
    """--to or --from URL, checked and normalized like --results-db; exit 2 when unusable."""
    from retailpulse_cli.errors import ConfigError
    from retailpulse_cli.storage.results_db.url import normalized, shown

    try:
        return normalized(text)
    except ValueError as exc:
        raise ConfigError(f"--to {shown(text)}: {exc}", hint="") from None


def _print(done: list[Any], as_json: bool) -> None:
    from retailpulse_cli.ui import console

    with console.stdout_guard():
        if as_json:
            console.print_json(
                [{"job_id": d.job_id, "rows": d.rows, "level": d.level} for d in done]
            )
            return
        for d in done:
            sys.stdout.write(f"{d.job_id}\t{d.rows}\t{'level' if d.level else 'written'}\n")


def _summary(done: list[Any], url: str, seconds: float) -> str:
    from retailpulse_cli.storage.results_db.url import shown
    from retailpulse_cli.ui.console import plural

    rows = sum(d.rows for d in done)
    written = sum(1 for d in done if not d.level)
    level = len(done) - written
    already = f"{plural(level, 'job')} already level" if level else ""
    if not written:
        return f"nothing to write to {shown(url)}" + (f": {already}" if already else "")
    rate = f" ({rows / seconds:,.0f} rows/s)" if rows and seconds > 0 else ""
    line = f"exported {plural(rows, 'row')} of {plural(written, 'job')} to {shown(url)} "
    line += f"in {seconds:.1f}s{rate}"
    return line + (f"; {already}" if already else "")


def register(app: typer.Typer, wrap: Callable[[Any], Any]) -> None:
    """Add `export` to the app, its errors handled like every command's."""
    app.command(name="export", epilog=EPILOG)(wrap(export))
