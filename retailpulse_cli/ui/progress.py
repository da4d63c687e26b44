"""Live progress on stderr: a Rich bar per job on a terminal, a few plain lines elsewhere."""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from retailpulse_cli.model import JobStatus, Record
from retailpulse_cli.processing.tally import Tally
from retailpulse_cli.storage.job_dir import Job
from retailpulse_cli.text.escape import safe
from retailpulse_cli.text.figures import plural, rate_text
from retailpulse_cli.ui.console import source_label
from retailpulse_cli.ui.output import Output, info_line
from retailpulse_cli.ui.streams import leave_terminal, log_line, terminal_fds, timestamp

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

LIVE_RATE_WHOLE_FROM = 100.0  # img/s on a moving bar: tenths only below this


class ProgressBoard:
    """Live progress on stderr for one or several jobs: a Rich bar per job on a terminal;
    otherwise a plain line per job at each 10 % and every few seconds, so cron logs stay
    short and free of escape codes."""

    PLAIN_EVERY = 10.0

    def __init__(self, output: Output) -> None:
        self.output = output
        self.console = output.err
        self.live = self.console.is_terminal and not output.quiet and not output.verbose
        self.progress: Progress | None = None
        if self.live:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]} img/s"),
                TextColumn("[red]{task.fields[failed]} failed"),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=self.console,
            )
            self.progress.start()

    def observer(self) -> JobProgress:
        """A job's observer; on a terminal its row is made now (hidden until the job
        starts), so rows stand in the order the files were given, not the order in which
        their threads happened to start."""
        task = None
        if self.progress is not None and not self.output.quiet:
            task = self.progress.add_task("", total=None, visible=False, rate="-", failed=0)
        return JobProgress(self, task)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def __enter__(self) -> ProgressBoard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _markup_free(text: str) -> str:
    """Progress rows are Rich markup templates: a file named `[red]x.json` stays text."""
    from rich.markup import escape

    return escape(text)


class JobProgress:
    """One job's progress on a ProgressBoard (a jobs.run.Observer).

    A retry counts and rates only the images it runs again: its total is those images,
    not the job's (whose failed images were counted once already)."""

    def __init__(self, board: ProgressBoard, task: TaskID | None = None) -> None:
        self.board = board
        self.output = board.output
        self.label = ""
        self.name = ""
        self.task = task
        self.t0 = time.monotonic()
        self.t_last = self.t0  # when this job recorded its last image (its own end)
        self.base = 0  # images settled before this run and not redone by it
        self.total = 0  # images this display counts towards
        self.retrying = False
        self.processed = 0  # images this run has recorded
        self.failed_now = 0  # of those, failed
        self.last_plain = 0.0
        self.last_decile = -1

    def started(self, job: Job, tally: Tally, todo: int, source: str = "") -> None:
        self.t0 = self.t_last = time.monotonic()
        # images to do that the tally counted already are being retried
        self.retrying = tally.done > tally.images_total - todo
        self.base = 0 if self.retrying else tally.images_total - todo
        self.total = todo if self.retrying else tally.images_total
        self.label = job.id
        self.name = source_label(source, job.id)
        progress = self.board.progress
        if progress is not None and not self.output.quiet:
            if self.task is None:
                self.task = progress.add_task("", rate="-", failed=0)
            progress.update(
                self.task,
                description=_markup_free(self.name),
                total=self.total,
                completed=self.base,
                failed=self._failed(tally),
                visible=True,
            )
        where = f"job {self.label}{f' ({source})' if source else ''}"
        if self.retrying:
            self._say(f"{where}: retrying {todo:,} of {plural(tally.images_total, 'image')}")
        else:
            self._say(f"{where}: {todo:,} of {plural(tally.images_total, 'image')} to process")
        if todo == 0:
            self._say(f"job {self.label}: nothing left to do")

    def _say(self, message: str) -> None:
        """A job's first or last line. Under the live bar (a terminal) or with --quiet it
        goes to the --log-file only: quiet is for the terminal, a log keeps what ran."""
        if self.board.live or self.output.quiet:
            log_line(f"retailpulse: {safe(message)}")
        else:
            info_line(message)

    def _failed(self, tally: Tally) -> int:
        return self.failed_now if self.retrying else tally.failed

    def record(self, record: Record, tally: Tally) -> None:
        self.processed += 1
        self.t_last = time.monotonic()
        if record.get("status") != "ok":
            self.failed_now += 1
        if self.output.verbose and not self.output.quiet:
            if record.get("status") == "ok":
                what = f"ok {record['width']}x{record['height']} perimeter={record['perimeter']}"
            else:
                what = f"FAILED {record.get('error_code')}: {record.get('error')}"
            # [done/total] is progress, as on the bar; `image N` is its place in the job file
            settled = f"[{self.base + self.processed:,}/{self.total:,}]"
            where = f"job {self.label} {settled} image {record['index'] + 1}:"
            info_line(f"{where} {record['store_id']} {record['image_url']} {what}")

    def rate(self) -> float:
        return self.processed / max(time.monotonic() - self.t0, 1e-6)

    def tick(self, tally: Tally) -> None:
        if self.output.quiet:
            return
        progress = self.board.progress
        if progress is not None and self.task is not None:
            progress.update(
                self.task,
                completed=self.base + self.processed,
                rate=rate_text(self.rate(), whole_from=LIVE_RATE_WHOLE_FROM)
                if self.processed
                else "-",
                failed=self._failed(tally),
            )
            return
        if self.output.verbose or not self.processed:  # no line, and no rate, before one
            return
        settled = self.base + self.processed
        decile = settled * 10 // max(self.total, 1)
        now = time.monotonic()
        if decile != self.last_decile or now - self.last_plain >= self.board.PLAIN_EVERY:
            if settled < self.total:
                info_line(
                    f"job {self.label} ({self.name}): {settled:,}/{plural(self.total, 'image')}"
                    f"{' retried' if self.retrying else ''}, {self._failed(tally):,} failed, "
                    f"{rate_text(self.rate(), whole_from=LIVE_RATE_WHOLE_FROM)} img/s"
                )
            self.last_decile = decile
            self.last_plain = now

    def finished(self, status: JobStatus) -> None:
        """A plain closing line: which job and file, what happened, how many, how fast.
        Several jobs end together (their lines come once all are done): each line gives
        its own job's time, up to its last image."""
        counts = (
            f"{status.get('images_ok', 0):,} ok, {status.get('images_failed', 0):,} failed of "
            f"{plural(status.get('images_total', 0), 'image')}"
        )
        if not self.label:  # never started: a finished job's retry had nothing to run
            job_id = safe(str(status.get("job_id")))
            name = source_label(str(status.get("source") or ""), job_id)
            self._say(f"job {job_id} ({name}) {status.get('status')}, nothing to do: {counts}")
            return
        elapsed = self.t_last - self.t0
        speed = f"{rate_text(self.processed / max(elapsed, 1e-6))} img/s"
        if self.retrying:
            speed = f"{self.processed:,} retried, {speed}"
        self._say(
            f"job {self.label} ({self.name}) {status.get('status')}: {counts} "
            f"in {elapsed:.1f}s ({speed})"
        )


class StatusWatch:
    """`status --wait` on a terminal: the bar `submit` shows, fed from status.json (polled
    by jobs.read.wait_for); its rate counts the images done since the watch began."""

    def __init__(self, output: Output) -> None:
        self.board = ProgressBoard(output)
        self.task: TaskID | None = None
        self.t0 = time.monotonic()
        self.first_done = 0

    def update(self, status: JobStatus) -> None:
        progress = self.board.progress
        if progress is None or self.board.output.quiet:
            return
        done = int(status.get("images_done") or 0)
        if self.task is None:
            self.first_done, self.t0 = done, time.monotonic()
            label = source_label(str(status.get("source") or ""), str(status.get("job_id")))
            self.task = progress.add_task(_markup_free(label), total=None, rate="-", failed=0)
        moved = done - self.first_done
        rate = moved / max(time.monotonic() - self.t0, 1e-6)
        progress.update(
            self.task,
            total=int(status.get("images_total") or 0),
            completed=done,
            rate=rate_text(rate, whole_from=LIVE_RATE_WHOLE_FROM) if moved > 0 else "-",
            failed=int(status.get("images_failed") or 0),
        )

    def close(self) -> None:
        self.board.close()

    def __enter__(self) -> StatusWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SignalLines:
    """What a run tells the user about signals (jobs.signals.SignalNotes): a line on
    stderr; after a hang-up, output meant for the terminal goes to /dev/null and a line
    in each job's worker.log says what happened and how to see the outcome."""

    def __init__(self, logs: list[Path]) -> None:
        self.logs = logs
        self.ttys = terminal_fds()  # asked now: after a hang-up, isatty() itself fails

    def stopping(self, signal_name: str) -> None:
        if 2 in self.ttys:
            sys.stderr.write("\n")  # off the progress bar's line
        info_line(f"{signal_name}: stopping; finishing images in flight (again to quit now)")

    def hung_up(self) -> None:
        note = (
            "SIGHUP (terminal closed): the job goes on; "
            "`retailpulse status JOB_ID` shows its outcome"
        )
        if self.ttys:
            leave_terminal(self.ttys)
            for log in self.logs:
                with contextlib.suppress(OSError), log.open("a", encoding="utf-8") as fh:
                    fh.write(f"{timestamp()} retailpulse: {note}\n")
        # a pipe or a file that still has its reader gets it there; --log-file gets it too
        info_line(note)
