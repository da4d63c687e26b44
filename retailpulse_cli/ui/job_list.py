"""The `list` table, fitted to the width it is shown in.

A terminal of 80 columns cannot hold every column whole (an id and a created time with
milliseconds are 24 characters each), and Rich, left to itself, cuts the created time and
wraps the source over several lines. So the columns are chosen here, by priority, before
Rich sees them: the job id is always whole; `created` is shortened to the minute, then
dropped (the id starts with the same UTC time); the source is cut with an ellipsis; then
the counts go. A pipe or a file gets every column whole (its width is set wide).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timezone

from rich.cells import cell_len
from rich.table import Table
from rich.text import Text

from retailpulse_cli.model import JobListing
from retailpulse_cli.storage.job_dir import parse_time
from retailpulse_cli.text.escape import safe
from retailpulse_cli.ui.console import STATUS_STYLE, source_label

GAP = 2  # Rich puts one space of padding on each side of a column boundary
SOURCE_MIN = 12  # a source cut shorter than this says nothing; drop the column instead
NUMBERS = ("images", "failed")
# Layouts from the widest to the narrowest: (columns, created to the minute?)
LAYOUTS: tuple[tuple[tuple[str, ...], bool], ...] = (
    (("job_id", "created", "status", "images", "failed", "source"), False),
    (("job_id", "created", "status", "images", "failed", "source"), True),
    (("job_id", "status", "images", "failed", "source"), False),
    (("job_id", "status", "images", "failed"), False),
    (("job_id", "status", "images"), False),
    (("job_id", "status"), False),
)


OWNER_BEFORE = "source"  # where the owner column goes, when any job has an owner


def layouts(with_owner: bool) -> tuple[tuple[tuple[str, ...], bool], ...]:
    """LAYOUTS, led (when some job was submitted to `serve` by a user) by the two widest
    with an owner column: it is the first to go when the width runs short."""
    if not with_owner:
        return LAYOUTS
    at = LAYOUTS[0][0].index(OWNER_BEFORE)
    wide = tuple(((*columns[:at], "owner", *columns[at:]), short) for columns, short in LAYOUTS[:2])
    return wide + LAYOUTS


@dataclass(frozen=True)
class Layout:
    columns: tuple[str, ...]
    short_created: bool
    source_width: int  # 0 when the source column is not shown


def short_time(text: str) -> str:
    """`2026-12-03T22:01:54.123Z` -> `2026-12-03T22:01Z` (UTC, to the minute)."""
    when = parse_time(text)
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%MZ") if when else text


def cells_of(row: JobListing) -> dict[str, str]:
    """One job's cells as the table shows them (escaped, whole)."""
    done, total = row.get("images_done", 0), row.get("images_total", 0)
    return {
        "job_id": safe(str(row["job_id"])),
        "created": safe(str(row.get("created_at") or "-")),
        "status": safe(str(row.get("status"))),
        "images": f"{total:,}" if done == total else f"{done:,}/{total:,}",
        "failed": f"{row.get('images_failed', 0):,}",
        "owner": safe(str(row.get("owner") or "-")),
        "source": source_label(str(row.get("source") or ""), "-"),
    }


def _widths(rows: Sequence[dict[str, str]], short_created: bool) -> dict[str, int]:
    widths = {name: cell_len(name) for name in (*LAYOUTS[0][0], "owner")}
    for cells in rows:
        for name, value in cells.items():
            if name == "created" and short_created:
                value = short_time(value)
            widths[name] = max(widths[name], cell_len(value))
    return widths


def choose_layout(rows: Sequence[dict[str, str]], width: int) -> Layout:
    """The widest layout that fits `width` columns (the narrowest if none does)."""
    with_owner = any(cells["owner"] != "-" for cells in rows)
    for columns, short in layouts(with_owner):
        widths = _widths(rows, short)
        fixed = sum(widths[c] for c in columns if c != "source") + GAP * (len(columns) - 1)
        if "source" not in columns:
            if fixed <= width:
                return Layout(columns, short, 0)
            continue
        room = width - fixed
        if room >= min(widths["source"], SOURCE_MIN):
            return Layout(columns, short, min(room, widths["source"]))
    return Layout(LAYOUTS[-1][0], False, 0)


def jobs_table(rows: list[JobListing], width: int) -> Table:
    """The table of `list` for a display `width` columns wide."""
    all_cells = [cells_of(r) for r in rows]
    layout = choose_layout(all_cells, width)
    table = Table(box=None, pad_edge=False)
    for name in layout.columns:
        table.add_column(
            name,
            justify="right" if name in NUMBERS else "left",
            no_wrap=True,
            overflow="ellipsis" if name == "source" else "fold",
            max_width=layout.source_width if name == "source" else None,
        )
    for cells in all_cells:
        shown: list[Text] = []
        for name in layout.columns:
            value = cells[name]
            if name == "created" and layout.short_created:
                value = short_time(value)
            shown.append(Text(value, style=STATUS_STYLE.get(value, "") if name == "status" else ""))
        table.add_row(*shown)
    return table
