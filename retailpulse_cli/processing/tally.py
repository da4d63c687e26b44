"""Running counts of a job, kept incrementally so `status` never has to scan results."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from retailpulse_cli.model import JobCounts, Record, StoreProblem

STORE_NOT_FOUND = "store_not_found"


@dataclass
class Tally:
    """Counts of one job; fed every result record, in any order, exactly once each."""

    images_total: int
    images_per_store: Counter[str]
    visits: int = 0
    done: int = 0
    ok: int = 0
    failed: int = 0
    stored: int = 0  # ok images kept by --save-images
    by_code: Counter[str] = field(default_factory=Counter)
    failed_by_store: dict[str, Counter[str]] = field(default_factory=dict)

    def add(self, record: Record) -> None:
        self.done += 1
        if record.get("status") == "ok":
            self.ok += 1
            self.stored += "stored_as" in record
            return
        self.failed += 1
        code = str(record.get("error_code") or "unknown")
        self.by_code[code] += 1
        self.failed_by_store.setdefault(str(record.get("store_id")), Counter())[code] += 1

    def forget(self, record: Record) -> None:
        """Undo `add` for a record that a retry is about to replace."""
        self.done -= 1
        if record.get("status") == "ok":
            self.ok -= 1
            self.stored -= "stored_as" in record
            return
        self.failed -= 1
        code = str(record.get("error_code") or "unknown")
        self.by_code[code] -= 1
        if self.by_code[code] <= 0:
            del self.by_code[code]
        store = self.failed_by_store.get(str(record.get("store_id")))
        if store is not None:
            store[code] -= 1
            if store[code] <= 0:
                del store[code]
            if not store:
                del self.failed_by_store[str(record.get("store_id"))]

    @property
    def unknown_stores(self) -> list[str]:
        return [s for s, codes in self.failed_by_store.items() if STORE_NOT_FOUND in codes]

    def counts(self) -> JobCounts:
        return {
            "visits": self.visits,
            "images_total": self.images_total,
            "images_done": self.done,
            "images_ok": self.ok,
            "images_failed": self.failed,
            "images_stored": self.stored,
            "stores_unknown": len(self.unknown_stores),
            "failures_by_code": dict(sorted(self.by_code.items(), key=lambda kv: (-kv[1], kv[0]))),
        }

    def errors(self) -> list[StoreProblem]:
        """One entry per store with a problem, in the shape clients parse."""
        out: list[StoreProblem] = []
        for store_id, codes in self.failed_by_store.items():
            total = self.images_per_store.get(store_id, 0)
            if STORE_NOT_FOUND in codes:
                out.append(
                    {
                        "store_id": store_id,
                        "error": f"store id {store_id} is not in the store master",
                        "code": STORE_NOT_FOUND,
                        "images": total,
                    }
                )
                continue
            n = sum(codes.values())
            detail = ", ".join(f"{c} x{k}" for c, k in codes.most_common())
            out.append(
                {
                    "store_id": store_id,
                    "error": f"{n} of {total} images failed: {detail}",
                    "code": "image_failed",
                    "failed_images": n,
                    "codes": dict(codes.most_common()),
                }
            )
        return out
