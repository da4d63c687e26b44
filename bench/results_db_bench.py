"""What `--results-db` costs (issue 20), against a real image server and real databases:
SQLite files and a PostgreSQL server started here (tests/pgserver.py, fsync on).

    python bench/results_db_bench.py cost --images 2000 --rounds 3      # default GPU delay
    python bench/results_db_bench.py cost --images 2000 --gpu-delay 0
    python bench/results_db_bench.py fixed --rounds 15                  # start-up and end
    python bench/results_db_bench.py memory export --images 200000      # RSS; rows/s

`fixed`: a one-image job, `--rounds` times in turns: the start-up and end cost, best of each.
`cost`: the same job (same --seed, so the same GPU delays) without a database, into SQLite
and into PostgreSQL, in turns, `--rounds` times; wall time of the whole command (start-up
included); the median of each mode is compared. Target at the default delay: ≤ 3 %.
`memory`: a job of tiny images at --gpu-delay 0 with and without --results-db sqlite:
peak RSS, and RSS at each quarter of the run (flat: no growth with the records written).
`export`: `retailpulse export --to` of one such job into a fresh SQLite file and a fresh
PostgreSQL database: rows/s of the whole command. Target: ≥ 20,000 rows/s into each.
Figures on a shared 2-core machine are noisy: the load average is printed with them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from benchutil import fmt_mb, say  # noqa: E402
from images import make_images  # noqa: E402
from imgserver import ImageServer  # noqa: E402
from jobfiles import make_job, pick_photo  # noqa: E402
from measure import Measured, run_measured  # noqa: E402

from tests.pgserver import PgServer  # noqa: E402 (the tests' real PostgreSQL)


def load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def retailpulse(*args: str, jobs: Path, sample_rss: bool = False) -> Measured:
    env = {**os.environ, "NO_COLOR": "1", "RETAILPULSE_JOBS_DIR": str(jobs)}
    m = run_measured(
        [sys.executable, "-m", "retailpulse_cli", *args], env=env, sample_rss=sample_rss
    )
    if m.rc not in (0, 1):
        raise SystemExit(f"retailpulse {args[0]} failed ({m.rc}): {m.stderr[-800:]}")
    return m


def cost(a: argparse.Namespace, tmp: Path, pg: PgServer) -> None:
    images = make_images(40)
    with ImageServer(images.all(), 2) as server:
        job = make_job(
            tmp / "job.json", a.images, lambda rng: pick_photo(images, rng), server.url("")
        )
        walls: dict[str, list[float]] = {"none": [], "sqlite": [], "postgresql": []}
        cpus: dict[str, list[float]] = {"none": [], "sqlite": [], "postgresql": []}
        for k in range(a.rounds):
            targets = {
                "none": [],
                "sqlite": ["--results-db", f"sqlite:///{tmp}/cost-{k}.db"],
                "postgresql": ["--results-db", pg.create_db(f"cost{k}")],
            }
            for mode, extra in targets.items():
                m = retailpulse("submit", str(job.path), "--gpu-delay", a.gpu_delay, "--seed", "11",
                                *extra, jobs=tmp / f"jobs-{mode}-{k}")  # fmt: skip
                walls[mode].append(m.wall)
                cpus[mode].append(m.cpu_user + m.cpu_sys)
                say(f"  round {k + 1} {mode:<10} {m.wall:7.2f}s, CPU {cpus[mode][-1]:5.2f}s "
                    f"({load()})")  # fmt: skip
    base, base_cpu = statistics.median(walls["none"]), statistics.median(cpus["none"])
    say(f"{a.images:,} images, --gpu-delay {a.gpu_delay}: median wall without a database "
        f"{base:.2f}s, CPU {base_cpu:.2f}s")  # fmt: skip
    for mode in ("sqlite", "postgresql"):
        med, cpu = statistics.median(walls[mode]), statistics.median(cpus[mode])
        say(f"  --results-db {mode:<10} {med:7.2f}s  cost {100 * (med - base) / base:+.1f} % "
            f"of wall; CPU {cpu:.2f}s ({cpu - base_cpu:+.2f}s)")  # fmt: skip


def fixed(a: argparse.Namespace, tmp: Path, pg: PgServer) -> None:
    """The database's fixed cost on the critical path (import, connect, schema check at
    the start; the last batch and the job's final row at the end): a one-image job, many
    times in turns; the minimum of each mode, which load from other processes only raises."""
    images = make_images(1)
    with ImageServer(images.all(), 1) as server:
        job = make_job(tmp / "one.json", 1, lambda rng: images.tiny[0], server.url(""))
        targets = {
            "none": [],
            "sqlite": ["--results-db", f"sqlite:///{tmp}/fixed.db"],
            "postgresql": ["--results-db", pg.create_db("fixed")],
        }
        walls: dict[str, list[float]] = {mode: [] for mode in targets}
        cpus: dict[str, list[float]] = {mode: [] for mode in targets}
        for _ in range(a.rounds):
            for mode, extra in targets.items():
                m = retailpulse("submit", str(job.path), "--gpu-delay", "0", *extra,
                                jobs=tmp / f"jobs-fixed-{mode}")  # fmt: skip
                walls[mode].append(m.wall)
                cpus[mode].append(m.cpu_user + m.cpu_sys)
    base, base_cpu = min(walls["none"]), min(cpus["none"])
    say(f"one-image job, best of {a.rounds}: without a database {base:.3f}s, CPU "
        f"{base_cpu:.3f}s ({load()})")  # fmt: skip
    for mode in ("sqlite", "postgresql"):
        wall, cpu = min(walls[mode]), min(cpus[mode])
        say(f"  --results-db {mode:<10} {wall:.3f}s (+{wall - base:.3f}s), CPU {cpu:.3f}s "
            f"(+{cpu - base_cpu:.3f}s)")  # fmt: skip


def memory(a: argparse.Namespace, tmp: Path) -> Path:
    images = make_images(4)
    with ImageServer(images.all(), 2) as server:
        job = make_job(
            tmp / "tiny.json", a.images, lambda rng: rng.choice(images.tiny), server.url("")
        )
        modes = {"sqlite": ["--results-db", f"sqlite:///{tmp}/memory.db"]}
        if not a.no_baseline:
            modes = {"none": [], **modes}
        for mode, extra in modes.items():
            m = retailpulse("submit", str(job.path), "--gpu-delay", "0", *extra,
                            jobs=tmp / f"jobs-memory-{mode}", sample_rss=True)  # fmt: skip
            quarters = [m.rss_at(q) for q in (0.25, 0.5, 0.75, 1.0)]
            shown = ", ".join(fmt_mb(q) if q else "-" for q in quarters)
            say(f"{a.images:,} tiny images, {mode:<6}: {m.wall:6.1f}s, peak RSS "
                f"{fmt_mb(m.maxrss_kib)}; RSS at 1/4, 1/2, 3/4, end: {shown}")  # fmt: skip
            say(f"  ({load()})")
    return tmp / "jobs-memory-sqlite"


def export(a: argparse.Namespace, tmp: Path, pg: PgServer, jobs: Path | None) -> None:
    if jobs is None:
        a.no_baseline = True
        jobs = memory(a, tmp)
    targets = (("sqlite", f"sqlite:///{tmp}/export.db"), ("postgresql", pg.create_db("export")))
    for name, url in targets:
        server = pg.cpu_seconds()
        m = retailpulse("export", "--to", url, jobs=jobs)
        time.sleep(0.5)  # its server process has exited and been reaped: counted
        server = pg.cpu_seconds() - server if name == "postgresql" else 0.0
        rows = sum(int(line.split("\t")[1]) for line in m.stdout.splitlines())
        client = m.cpu_user + m.cpu_sys
        say(f"export of {rows:,} records into {name:<10}: {m.wall:6.2f}s = {rows / m.wall:,.0f} "
            f"rows/s (start-up included), peak RSS {fmt_mb(m.maxrss_kib)}")  # fmt: skip
        say(f"  CPU: retailpulse {client:.2f}s + server {server:.2f}s = "
            f"{rows / (client + server):,.0f} rows per CPU second ({load()})")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sections", nargs="+", choices=("cost", "fixed", "memory", "export"))
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--gpu-delay", default="0.1:0.4")
    p.add_argument("--no-baseline", action="store_true", help="memory: only the run with SQLite")
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="rp-dbbench-") as name:
        tmp = Path(name)
        pg = PgServer(durable=True).init().start()
        try:
            if "cost" in a.sections:
                cost(a, tmp, pg)
            if "fixed" in a.sections:
                fixed(a, tmp, pg)
            jobs = memory(a, tmp) if "memory" in a.sections else None
            if "export" in a.sections:
                export(a, tmp, pg, jobs)
        finally:
            pg.stop()
            pg.remove()


if __name__ == "__main__":
    main()
