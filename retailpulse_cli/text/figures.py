"""Numbers as people read them: a count with its noun, a rate of images per second."""

from __future__ import annotations


def plural(count: int, noun: str) -> str:
    """`1 visit`, `2 visits`, `1,000 images`."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def rate_text(rate: float | None, *, whole_from: float | None = None) -> str:
    """Images per second: `-` when unknown, else one decimal; from `whole_from` up none
    (a live progress figure, where the tenths only flicker)."""
    if rate is None:
        return "-"
    if whole_from is not None and rate >= whole_from:
        return f"{rate:,.0f}"
    return f"{rate:,.1f}"
