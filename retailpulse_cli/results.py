"""Streaming a job's result records out as JSON Lines or CSV (never the whole job in memory)."""

from __future__ import annotations

import csv
import json
from typing import Any, TextIO

from .jobstore import Job

CSV_COLUMNS = (
    "index",
    "store_id",
    "visit_time",
    "image_url",
    "status",
    "width",
    "height",
    "perimeter",
    "format",
    "attempts",
    "error_code",
    "error",
)


def write(job: Job, *, fmt: str, only_failed: bool, out: TextIO) -> int:
    """Write records to `out`; return how many were written."""
    n = 0
    writer: Any = None
    if fmt == "csv":
        writer = csv.DictWriter(
            out, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n"
        )
        writer.writeheader()
    for rec in job.iter_records():
        if only_failed and rec.get("status") == "ok":
            continue
        if writer is not None:
            writer.writerow(rec)
        else:
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")
        n += 1
    out.flush()
    return n
