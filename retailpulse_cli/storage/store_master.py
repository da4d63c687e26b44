"""The store master: a CSV of known stores, loaded once and looked up by id."""

from __future__ import annotations

import csv
import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from retailpulse_cli.errors import StoreMasterError

ENV_VAR = "RETAILPULSE_STORE_MASTER"
_ID_COLUMNS = {"storeid"}  # header names after lowercasing and dropping "_", " " and "-"


@dataclass(frozen=True)
class StoreMaster:
    path: Path
    ids: frozenset[str]

    def __contains__(self, store_id: object) -> bool:
        return store_id in self.ids

    def __len__(self) -> int:
        return len(self.ids)


def default_path() -> Path:
    """The store master shipped with the package (wheel) or beside it (source checkout)."""
    package = Path(__file__).resolve().parent.parent  # retailpulse_cli/
    packaged = package / "data" / "store_master.csv"
    if packaged.is_file():
        return packaged
    return package.parent / "store_master.csv"


def resolve_path(option: str | os.PathLike[str] | None) -> Path:
    """--store-master, else $RETAILPULSE_STORE_MASTER, else the shipped one."""
    if option:
        return Path(option).expanduser()
    env = os.environ.get(ENV_VAR, "").strip()
    return Path(env).expanduser() if env else default_path()


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", "").replace(" ", "").replace("-", "")


# A store master is a list of ids: ~10 bytes a line, thousands of lines. The caps keep a
# wrong path (/dev/zero, a video, a log) to one clear error in a blink, not a MemoryError.
MAX_LINE = 64 * 1024  # characters in one line
MAX_SIZE = 64 * 1024 * 1024  # characters in the whole file


def _capped_lines(fh: TextIO, path: Path) -> Iterator[str]:
    """The file's lines, refusing a line over MAX_LINE or a file over MAX_SIZE before
    reading past either (iterating a file would read a line of any length into memory)."""
    total = 0
    for lineno in itertools.count(1):
        line = fh.readline(MAX_LINE + 1)
        if not line:
            return
        total += len(line)
        if len(line) > MAX_LINE:
            raise StoreMasterError(
                f"store master {path}: line {lineno} is over {MAX_LINE:,} characters; "
                "not a store master CSV"
            )
        if total > MAX_SIZE:
            raise StoreMasterError(
                f"store master {path}: over {MAX_SIZE:,} characters; not a store master CSV"
            )
        yield line


def load(path: Path) -> StoreMaster:
    """Load store ids; accepts either header spelling, CRLF, a UTF-8 BOM and stray spaces."""
    try:
        with path.open(newline="", encoding="utf-8-sig", errors="replace") as fh:
            rows = csv.reader(_capped_lines(fh, path))
            header = next(rows, None)
            if header is None:
                raise StoreMasterError(f"store master {path}: file is empty")
            columns = [_normalise(h) for h in header]
            found = [i for i, c in enumerate(columns) if c in _ID_COLUMNS]
            if not found:
                raise StoreMasterError(
                    f"store master {path}: no StoreID/store_id column in header "
                    f"{','.join(h.strip() for h in header)!r}"
                )
            col = found[0]
            ids = frozenset(row[col].strip() for row in rows if len(row) > col and row[col].strip())
    except FileNotFoundError:
        raise StoreMasterError(f"store master {path}: file not found") from None
    except IsADirectoryError:
        raise StoreMasterError(f"store master {path}: is a directory, not a CSV file") from None
    except PermissionError:
        raise StoreMasterError(f"store master {path}: permission denied") from None
    except (OSError, csv.Error) as exc:
        raise StoreMasterError(f"store master {path}: cannot be read: {exc}") from None
    if not ids:
        raise StoreMasterError(f"store master {path}: holds no store ids")
    return StoreMaster(path=path, ids=ids)
