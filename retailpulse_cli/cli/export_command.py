"""`retailpulse export --to URL [JOB_ID...] [--since WHEN]`: backfill a results database
from job directories (jobs/db_export.py does the work; this parses and renders)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer

from retailpulse_cli.cli.common import CommandGroup, JsonOpt, SinceOpt, examples, open_jobs
from retailpulse_cli.cli.common import parse_since_option as since_option
from retailpulse_cli.cli.option_groups import ReadOptions, read_options

if TYPE_CHECKING:
    from retailpulse_cli.jobs.db_export import JobExport

group = CommandGroup()

ToUrl = Annotated[
    str,
    typer.Option(
        "--to",
        metavar="URL",
        help="The results database: sqlite:///FILE or postgresql://USER@HOST:PORT/DB "
        "(password from PGPASSWORD or ~/.pgpass).",
    ),
]
ExportIds = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="[JOB_ID]...",
        help="Jobs to write. [default: every job in the jobs directory]",
        show_default=False,
    ),
]


@group.command(
    name="export",
    epilog=examples(
        "retailpulse export --to sqlite:////data/pulse.db",
        "retailpulse export --to postgresql://analyst@db:5432/pulse --since 7d",
    ),
)
@read_options
def export(
    to: ToUrl,
    job_ids: ExportIds = None,
    since: SinceOpt = None,
    as_json: JsonOpt = False,
    *,
    read: ReadOptions,
) -> None:
    """Write existing jobs' records, status and store errors to a results database.

    Idempotent: rows are upserted on their primary keys, and a job the database is
    already level with is not read again. Prints `JOB_ID<TAB>ROWS<TAB>written|level`.
    Exit codes: 0 done, 2 bad usage or a database this installation cannot use,
    5 no such job, 7 database unreachable or damaged job.
    """
    from retailpulse_cli.jobs import db_export
    from retailpulse_cli.ui.export_progress import RowsProgress
    from retailpulse_cli.ui.output import info_line

    if job_ids and since:
        raise typer.BadParameter("give job ids or --since, not both", param_hint="--since")
    url = checked_url(to)
    store = open_jobs(read.jobs_dir, read.config_file)
    work = db_export.plan(store, job_ids or [], since_option(since))
    for why in work.skipped:
        info_line(f"skipped: {why}")
    started = time.monotonic()
    with RowsProgress(read.output, work.records) as bar:
        done = db_export.export(url, work, bar.advance)
    _print(done, as_json)
    if not read.output.quiet:
        info_line(_summary(done, url, time.monotonic() - started))


def checked_url(text: str) -> str:
    """--to or --from URL, checked and normalized like --results-db; exit 2 when unusable."""
    from retailpulse_cli.errors import ConfigError
    from retailpulse_cli.storage.results_db.url import normalized, shown

    try:
        return normalized(text)
    except ValueError as exc:
        raise ConfigError(f"{shown(text)}: {exc}", hint="") from None


def _print(done: list[JobExport], as_json: bool) -> None:
    from retailpulse_cli.ui.output import print_json, print_lines, stdout_guard

    with stdout_guard():
        if as_json:
            print_json([{"job_id": d.job_id, "rows": d.rows, "level": d.level} for d in done])
        else:
            print_lines(
                [f"{d.job_id}\t{d.rows}\t{'level' if d.level else 'written'}" for d in done]
            )


def _summary(done: list[JobExport], url: str, seconds: float) -> str:
    from retailpulse_cli.storage.results_db.url import shown
    from retailpulse_cli.text.figures import plural

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
