"""Looking back over many jobs: `report` (counts per store, failures, speed) and `prune`
(removing old job directories)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from retailpulse_cli.cli.common import (
    CommandGroup,
    JsonOpt,
    SinceOpt,
    choices,
    complete_job_ids,
    examples,
    open_jobs,
    parse_since_option,
)
from retailpulse_cli.cli.option_groups import ReadOptions, read_options
from retailpulse_cli.errors import ExitCode
from retailpulse_cli.model import JobState

if TYPE_CHECKING:
    from datetime import timedelta

    from retailpulse_cli.jobs.prune import PruneResult

group = CommandGroup()
REPORT_FORMATS = ("table", "csv", "json")

JobIds = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="[JOB_ID]...",
        help="Jobs to report on. [default: the latest job]",
        autocompletion=complete_job_ids,
        show_default=False,
    ),
]
ReportFormat = Annotated[
    str | None,
    typer.Option(
        "--format",
        "-f",
        help="table, csv (a row per store per job) or json.",
        autocompletion=choices(*REPORT_FORMATS),
    ),
]
HtmlPage = Annotated[
    Path | None,
    typer.Option("--html", metavar="FILE", help="Also write a self-contained HTML page."),
]
OlderThan = Annotated[
    str,
    typer.Option(
        "--older-than",
        metavar="AGE",
        help="Remove jobs finished (else created) longer ago than AGE: 30d, 12h, 2w, 30s.",
    ),
]
PruneStates = Annotated[
    list[JobState] | None,
    typer.Option(
        "--status",
        metavar="STATE",
        case_sensitive=False,
        help="Only jobs in this state (repeatable): completed, failed, interrupted. "
        "[default: completed and failed]",
        show_default=False,
    ),
]


FromDb = Annotated[
    str | None,
    typer.Option(
        "--from",
        metavar="URL",
        help="Read the jobs from this results database instead of the jobs directory "
        "(sqlite:///FILE or postgresql://USER@HOST:PORT/DB).",
    ),
]


@group.command(
    epilog=examples(
        "retailpulse report --since 24h --html report.html",
        "retailpulse report $JOB --format csv > stores.csv",
    )
)
@read_options
def report(
    job_ids: JobIds = None,
    since: SinceOpt = None,
    fmt: ReportFormat = None,
    html: HtmlPage = None,
    as_json: JsonOpt = False,
    from_db: FromDb = None,
    *,
    read: ReadOptions,
) -> None:
    """Per store: images, ok, failed, unknown; failures by code with sample URLs; duration
    and images/s per job; totals. With --html FILE and no --format/--json, only the page.
    With --from URL, the jobs of a results database (one report for many machines).

    Exit codes: 0 shown, 2 bad usage, 5 no such job (or no jobs), 7 damaged job or
    unwritable --html FILE.
    """
    from retailpulse_cli.jobs import report_counts
    from retailpulse_cli.ui import report_html, report_text
    from retailpulse_cli.ui.output import info_line, stdout_guard

    shown = report_format(fmt, as_json=as_json, html=html is not None)
    if job_ids and since:
        raise typer.BadParameter("give job ids or --since, not both", param_hint="--since")
    since_dt = parse_since_option(since)
    if from_db is not None:
        from retailpulse_cli.cli.export_command import checked_url
        from retailpulse_cli.jobs import report_from_db

        result = report_from_db.summarize(checked_url(from_db), job_ids or [], since_dt)
    else:
        store = open_jobs(read.jobs_dir, read.config_file)
        result = report_counts.summarize(store, job_ids or [], since_dt)
    if html is not None:
        report_html.write(result, html)
        if not read.output.quiet and str(html) != "-":
            info_line(f"report written to {html}")
    with stdout_guard():
        report_text.write(result, shown, read.output)


def report_format(fmt: str | None, *, as_json: bool, html: bool) -> str:
    """What `report` prints on stdout: table, csv, json, or "" (only the --html page)."""
    chosen = (fmt or ("json" if as_json else ("" if html else "table"))).lower()
    if chosen not in ("", *REPORT_FORMATS) or (as_json and chosen != "json"):
        raise typer.BadParameter(
            "use table, csv or json (--json is --format json)", param_hint="--format"
        )
    return chosen


@group.command(
    epilog=examples(
        "retailpulse prune --older-than 30d --dry-run",
        "retailpulse prune --older-than 7d --status failed --status interrupted --json",
    )
)
@read_options
def prune(
    older_than: OlderThan,
    statuses: PruneStates = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", "-n", help="List what would go; remove nothing.")
    ] = False,
    as_json: JsonOpt = False,
    *,
    read: ReadOptions,
) -> None:
    """Remove old job directories. A job being worked on (locked) is never removed, nor an
    interrupted one unless --status interrupted is given.

    Exit codes: 0 done (busy jobs are skipped), 2 bad usage, 7 cannot remove.
    """
    from retailpulse_cli.jobs import prune as pruning
    from retailpulse_cli.ui.output import info_line

    chosen = tuple(dict.fromkeys(statuses or pruning.DEFAULT_STATUSES))
    if any(s not in pruning.PRUNABLE for s in chosen):
        raise typer.BadParameter(
            f"use {', '.join(s.value for s in pruning.PRUNABLE)}", param_hint="--status"
        )
    age = parse_age(older_than)
    store = open_jobs(read.jobs_dir, read.config_file)
    result = pruning.prune(store, older_than=age, statuses=chosen, dry_run=dry_run)
    for job_id in result.busy:
        info_line(f"skipped {job_id}: being worked on by another process")
    print_pruned(result, as_json=as_json, dry_run=dry_run)
    if not read.output.quiet and not as_json:
        freed = pruning.human_bytes(result.freed)
        n = len(result.removed)
        what = f"{n} job{'s' if n != 1 else ''}"
        info_line(f"{'would free' if dry_run else 'freed'} {freed} ({what})")


def parse_age(text: str) -> timedelta:
    """--older-than AGE; a bad value is one line and the usage exit code."""
    from retailpulse_cli.jobs.read import parse_duration
    from retailpulse_cli.ui.output import error_line

    try:
        return parse_duration(text)
    except ValueError as exc:
        error_line(f"--older-than: {exc}")
        raise typer.Exit(int(ExitCode.USAGE)) from None


def print_pruned(result: PruneResult, *, as_json: bool, dry_run: bool) -> None:
    """The jobs removed (or that would be): JSON, or a tab-separated line each."""
    from retailpulse_cli.jobs.prune import human_bytes
    from retailpulse_cli.ui.output import print_json, print_lines, stdout_guard

    verb = "would remove" if dry_run else "removed"
    with stdout_guard():
        if as_json:
            print_json(result.removed)
            return
        print_lines(
            [
                f"{verb} {r['job_id']}\t{r['status']}\t{r['created_at']}\t{human_bytes(r['bytes'])}"
                for r in result.removed
            ]
        )
