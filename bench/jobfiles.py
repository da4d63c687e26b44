"""Job files for the benchmark: visits at real store ids, every URL distinct."""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchutil import STORE_MASTER
from images import Blob, ImageSet

# -- job files -------------------------------------------------------------------------------


def store_ids(path: Path = STORE_MASTER) -> list[str]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        ids = [row["StoreID"].strip() for row in csv.DictReader(fh) if row.get("StoreID")]
    if not ids:
        raise SystemExit(f"bench: no store ids in {path}")
    return ids


@dataclass
class Job:
    path: Path
    urls: list[str]
    bytes_total: int
    visits: int


def pick_photo(images: ImageSet, rng: random.Random) -> Blob:
    """A photo drawn by the format mix (--mix; 85% JPEG, 10% PNG, 5% WebP by default)."""
    r = rng.random() * sum(images.mix.values())
    for kind, weight in images.mix.items():
        if r < weight:
            return rng.choice(images.photos[kind])
        r -= weight
    return rng.choice(images.photos["jpeg"])


def make_job(
    path: Path,
    n_images: int,
    pick: Callable[[random.Random], Blob],
    base_url: str,
    *,
    seed: int = 7,
    count_offset: int = 0,
    n_visits: int | None = None,
) -> Job:
    """Visits of 2-4 images at known stores; every URL distinct (query string). With
    `n_visits`, exactly that many visits (and as many images as they draw)."""
    rng = random.Random(seed)
    ids = store_ids()
    visits: list[dict[str, Any]] = []
    urls: list[str] = []
    total = 0
    index = 0
    while len(visits) < n_visits if n_visits is not None else index < n_images:
        k = rng.randint(2, 4) if n_visits is not None else min(rng.randint(2, 4), n_images - index)
        v = len(visits)
        visit_urls = []
        for _ in range(k):
            blob = pick(rng)
            visit_urls.append(f"{base_url}{blob.path}?visit={v}&img={index}")
            total += len(blob.body)
            index += 1
        urls.extend(visit_urls)
        minute = v % (60 * 24)
        visits.append(
            {
                "store_id": rng.choice(ids),
                "image_url": visit_urls,
                "visit_time": f"2026-11-28T{minute // 60:02d}:{minute % 60:02d}:00+05:30",
            }
        )
    doc = {"count": len(visits) + count_offset, "visits": visits}
    path.write_text(json.dumps(doc, separators=(",", ":")), encoding="utf-8")
    return Job(path, urls, total, len(visits))
