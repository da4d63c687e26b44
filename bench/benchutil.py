"""Constants and output helpers shared by the benchmark modules."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
STORE_MASTER = REPO / "store_master.csv"
HOST = "127.0.0.1"
DEFAULT_WORKERS = 32  # retailpulse's default pool size (settings.DEFAULT_WORKERS)
DEFAULT_DELAY = (0.1, 0.4)  # retailpulse's default --gpu-delay
JPEG_TARGET_BYTES = 300_000
DEFAULT_MIX = {"jpeg": 85.0, "png": 10.0, "webp": 5.0}

# -- output ----------------------------------------------------------------------------------

_OUT: TextIO = sys.stdout


def set_output(stream: TextIO) -> None:
    """Send the human-readable lines to `stream` (stderr when --json owns stdout)."""
    global _OUT
    _OUT = stream


def say(text: str = "") -> None:
    _OUT.write(text + "\n")
    _OUT.flush()


def fmt_s(seconds: float) -> str:
    return f"{seconds:.3f}s"


def fmt_mb(kib: float) -> str:
    return f"{kib / 1024:.1f} MB"
