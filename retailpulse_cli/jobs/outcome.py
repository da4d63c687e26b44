"""A finished run's exit code: the documented outcome codes (README "Exit codes")."""

from __future__ import annotations

from collections.abc import Sequence

from retailpulse_cli.errors import ExitCode
from retailpulse_cli.model import JobState, JobStatus


def outcome_code(status: JobStatus) -> int:
    """0 completed (or still ongoing), 1 failed, 130 interrupted or cancelled, 143 stopped
    by SIGTERM."""
    state = status.get("status")
    if state == JobState.COMPLETED:
        return int(ExitCode.OK)
    if state == JobState.FAILED:
        return int(ExitCode.JOB_FAILED)
    if (
        state == JobState.CANCELLED
    ):  # stopped on request; `resume` finishes it, as an interrupted one
        return int(ExitCode.INTERRUPTED)
    if state == JobState.INTERRUPTED:
        by = str(status.get("interrupted_by") or "")
        return int(ExitCode.TERMINATED if "SIGTERM" in by else ExitCode.INTERRUPTED)
    return int(ExitCode.OK)


def combined_code(statuses: Sequence[JobStatus], invalid: int = 0) -> int:
    """One exit code for a run of several jobs (and `invalid` rejected job files): the
    most serious outcome wins."""
    codes = [outcome_code(s) for s in statuses]
    for worst in (ExitCode.TERMINATED, ExitCode.INTERRUPTED):
        if worst in codes:
            return int(worst)
    if invalid:
        return int(ExitCode.INVALID_INPUT)
    return max(codes, default=int(ExitCode.OK))


def interrupted(statuses: Sequence[JobStatus]) -> list[JobStatus]:
    """The jobs a run left `interrupted` (each to be resumed)."""
    return [s for s in statuses if s.get("status") == JobState.INTERRUPTED]
