"""Checking job files before anything is made: the rows `validate` prints, and the specs
`submit` creates jobs from (with the files it skips as `rejected` rows).

Nothing here prints; a skipped file is told through `Notes`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

from retailpulse_cli.errors import InvalidJobFile
from retailpulse_cli.jobs.notes import Notes
from retailpulse_cli.model import REJECTED, JobStatus, ProblemObject
from retailpulse_cli.processing import spec
from retailpulse_cli.storage.store_master import StoreMaster


class _Checked(TypedDict):
    file: str  # as given; `<stdin>` for -
    valid: bool
    problems: list[str]  # each with its JSON path (spec.Problem), in file order
    unknown_stores: list[str]


class ValidationRow(_Checked, total=False):
    """One job file as `validate` reports it; counts only for a valid file."""

    visits: int
    images: int


class Rejected(TypedDict):
    """A job file `submit` skipped, as `--json` prints it among the status objects."""

    file: str
    status: str  # always REJECTED
    problems: list[ProblemObject]


def validate_files(job_files: Sequence[str], master: StoreMaster) -> list[ValidationRow]:
    """Every file checked (format, then store ids against `master`), in the order given."""
    rows: list[ValidationRow] = []
    for given in job_files:
        name = "<stdin>" if given == "-" else given  # as every other command names it
        try:
            job_spec = spec.load(given)
        except InvalidJobFile as exc:
            rows.append(
                {"file": name, "valid": False, "problems": exc.problems, "unknown_stores": []}
            )
            continue
        unknown = sorted(s for s in job_spec.store_images if s not in master)
        rows.append(
            {
                "file": name,
                "valid": True,
                "visits": job_spec.visit_count,
                "images": job_spec.image_count,
                "problems": [],
                "unknown_stores": unknown,
            }
        )
    return rows


def load_specs(
    job_files: Sequence[str], *, strict: bool, notes: Notes
) -> tuple[list[spec.JobSpec], list[tuple[int, Rejected]]]:
    """The specs of the valid files, and each invalid one as (its position, its row).
    With `strict` (a single file) the InvalidJobFile propagates instead: it exits 3 with
    its own message."""
    specs: list[spec.JobSpec] = []
    rejected: list[tuple[int, Rejected]] = []
    for position, name in enumerate(job_files):
        try:
            specs.append(spec.load(name))
        except InvalidJobFile as exc:
            if strict:
                raise
            for problem in exc.problems:
                notes.error(f"{exc.source}: {problem}")
            notes.info(f"skipped {exc.source}: invalid job file")
            row: Rejected = {
                "file": exc.source,
                "status": REJECTED,
                "problems": spec.problem_objects(exc.problems),
            }
            rejected.append((position, row))
    return specs, rejected


def in_input_order(
    statuses: Sequence[JobStatus], rejected: Sequence[tuple[int, Rejected]]
) -> list[JobStatus | Rejected]:
    """Jobs and rejected files merged back into the order the files were given."""
    out: list[JobStatus | Rejected] = list(statuses)
    for position, row in sorted(rejected, key=lambda pair: pair[0]):
        out.insert(position, row)
    return out
