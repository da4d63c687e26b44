"""One `inbox` run: claim every job file dropped in the folder (jobs.inbox), plan a job
for each, and once they have run file each away in done/ or rejected/.

Every file is handled in isolation: whatever goes wrong with one (a poison file, a bug)
rejects that file with a reason and stops no other, tonight or tomorrow. Nothing here
prints; what happens to each file goes to `rows` and to `Notes`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

from retailpulse_cli.config.options import RunFlags
from retailpulse_cli.config.settings import Settings
from retailpulse_cli.errors import InvalidJobFile, JobBusy, JobDamaged, JobNotFound
from retailpulse_cli.jobs import inbox, lifecycle
from retailpulse_cli.jobs.inbox import Claim
from retailpulse_cli.jobs.lifecycle import Planned
from retailpulse_cli.jobs.notes import Notes
from retailpulse_cli.model import REJECTED, JobState, JobStatus, ProblemObject
from retailpulse_cli.processing import spec
from retailpulse_cli.storage.job_dir import JobStore
from retailpulse_cli.storage.store_master import StoreMaster


class _Filed(TypedDict):
    file: str  # the name it was dropped under
    job_id: str | None  # None: rejected before a job was made
    status: str  # the job's final status, or REJECTED


class InboxRow(_Filed, total=False):
    """One file of the run, as `inbox --json` prints it."""

    moved_to: str | None  # where it went (None: it could not be moved; next run retries)
    problems: list[ProblemObject]  # a rejected file's problems


@dataclass
class InboxRun:
    folder: Path  # resolved
    store: JobStore
    settings: Settings
    flags: RunFlags  # for resuming a job a dead run left behind
    master: StoreMaster
    notes: Notes
    rows: list[InboxRow] = field(default_factory=list)

    def claim_and_plan(self) -> tuple[list[Planned], list[Claim]]:
        """Claim every job file and plan its job; rejected files go to `rows` now."""
        planned: list[Planned] = []
        claims: list[Claim] = []
        found, left = inbox.claim_all(self.folder)
        for note in left:  # entries left alone: not regular files, uploads under way
            self.notes.info(f"inbox: {note}")
        for claim in found:
            item = self._take(claim)
            if item is not None:
                planned.append(item)
                claims.append(claim)
        return planned, claims

    def file_away(self, claims: Sequence[Claim], statuses: Sequence[JobStatus]) -> None:
        """Move each run file to done/ (an interrupted one stays claimed for the next run)."""
        for claim, st in zip(claims, statuses, strict=True):
            row: InboxRow = {"file": claim.name, "job_id": st["job_id"], "status": st["status"]}
            if st["status"] != JobState.INTERRUPTED:
                try:
                    row["moved_to"] = str(inbox.finish_done(self.folder, claim))
                except OSError as exc:  # its job is done; the next run moves it (nothing to redo)
                    self.notes.error(f"inbox: {claim.name}: cannot move to done/: {exc}")
            self.rows.append(row)

    @property
    def rejected(self) -> int:
        return sum(1 for r in self.rows if r["status"] == REJECTED)

    def _take(self, claim: Claim) -> Planned | None:
        """Plan one claimed file; a file that cannot be planned is rejected (None)."""
        try:
            return self._plan(claim)
        except JobBusy as exc:  # its job is being resumed by hand: leave it for next time
            self.notes.info(f"inbox: {claim.name}: {exc.message}; left for the next run")
            claim.release()
            return None
        except Exception as exc:
            problems = (
                exc.problems
                if isinstance(exc, InvalidJobFile)
                else [str(exc) or type(exc).__name__]
            )
        self._reject(claim, problems)
        return None

    def _reject(self, claim: Claim, problems: list[str]) -> None:
        row: InboxRow = {"file": claim.name, "job_id": None, "status": REJECTED}
        try:
            row["moved_to"] = str(inbox.finish_rejected(self.folder, claim, problems))
        except Exception as exc:  # cannot even move it (disk full?): the next run tries again
            self.notes.error(f"inbox: {claim.name}: cannot move to rejected/: {exc}")
            claim.release()
            row["moved_to"] = None
        self.notes.error(f"{claim.name}: rejected: {'; '.join(problems)}")
        self.rows.append({**row, "problems": spec.problem_objects(problems)})

    def _plan(self, claim: Claim) -> Planned:
        """A claimed file -> a locked job ready to run (resumed if a dead run made it)."""
        if claim.job_id:  # left by a run that died: finish its job rather than submit again
            try:
                job = self.store.job(claim.job_id)
                return lifecycle.open_for_run(job, "resume", self.flags, self.notes)
            except (JobNotFound, JobDamaged):
                pass  # its job is gone: submit the file afresh
        try:
            raw = claim.path.read_bytes()
        except OSError as exc:
            raise OSError(f"cannot be read: {exc.strerror or exc}") from None
        job_spec = spec.parse(raw, source=str(self.folder / claim.name), base_dir=self.folder)
        job, lock = lifecycle.create_job(self.store, job_spec, self.settings, self.master)
        try:
            inbox.record_job(claim, job.id)
        except BaseException:
            lock.release()  # the job reads `interrupted`; the file is rejected with the reason
            raise
        return Planned(job, lock, "submit", self.settings, self.master, job_spec)
