"""Benchmark sections: start-up, fixed cost, and the comparison with the references."""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import targets
from benchutil import DEFAULT_WORKERS, fmt_mb, fmt_s, say
from images import ImageSet
from imgserver import ImageServer
from jobfiles import Job, make_job, pick_photo
from measure import Cli, Measured, show_timed, time_command
from references import REFERENCES, RefResult, run_reference, server_ceiling

# -- sections --------------------------------------------------------------------------------


@dataclass
class Context:
    args: argparse.Namespace
    python: str
    tmp: Path
    server: ImageServer
    images: ImageSet
    summary: dict[str, Any]
    problems: list[str]
    targets: list[tuple[str, str, str]]  # (target, measured, verdict)

    def downloads_flag(self) -> list[str]:
        d = self.args.downloads
        return ["--downloads", str(d)] if d else []

    def target(self, name: str, measured: str, ok: bool | None) -> None:
        if self.args.smoke:
            ok = None  # 50 images measure start-up, not speed: a smoke run judges nothing
        verdict = "n/a" if ok is None else "PASS" if ok else "FAIL"
        self.targets.append((name, measured, verdict))


def startup_baseline(ctx: Context, cli: Cli) -> None:
    say("== process start (context for the `status`/`list` targets)")
    repeat = ctx.args.repeat
    bare = time_command("python -c pass", [ctx.python, "-c", "pass"], repeat)
    version = time_command("retailpulse --version", [*cli.base, "--version"], repeat)
    show_timed(bare)
    show_timed(version)
    ctx.summary["startup"] = {"python": bare.median, "retailpulse_version": version.median}


def submit_checked(
    ctx: Context, cli: Cli, job: Job, *flags: str
) -> tuple[Measured, str, dict[str, Any]]:
    m = cli.submit(job.path, *flags)
    job_id = m.stdout.strip().splitlines()[-1] if m.stdout.strip() else ""
    status: dict[str, Any] = {}
    if m.rc != 0 or not job_id:
        ctx.problems.append(f"submit {job.path.name} {' '.join(flags)} exited {m.rc}")
        say(f"  !! submit exited {m.rc}; stderr tail:\n{m.stderr.strip()[-1500:]}")
        return m, job_id, status
    status = cli.status_json(job_id)
    ok = status.get("images_ok", 0)
    if ok != len(job.urls):
        ctx.problems.append(f"job {job_id}: {ok} ok of {len(job.urls)}")
        say(f"  !! only {ok} of {len(job.urls)} images ok: {json.dumps(status)[:1500]}")
    return m, job_id, status


def command_times(ctx: Context, cli: Cli, job_id: str, prefix: str) -> dict[str, Any]:
    """Wall time of status, results and list, process start included."""
    repeat = ctx.args.repeat
    out: dict[str, Any] = {}
    status = time_command("status JOB", cli.argv("status", job_id), repeat)
    show_timed(status, targets.STATUS_S)
    out["status_s"] = status.median
    out["status_rss_kib"] = status.maxrss_kib
    results = time_command("results JOB > /dev/null", cli.argv("results", job_id), repeat)
    show_timed(results)
    out["results_s"] = results.median
    out["results_rss_kib"] = results.maxrss_kib
    listing = time_command("list", cli.argv("list"), repeat, ok_codes=(0, 2))
    if listing.rc == 2 and "no such command" in listing.note.lower():
        say("  list                               skipped: this retailpulse has no `list` command")
        out["list_s"] = None
    else:
        show_timed(listing, 0.25)
        out["list_s"] = listing.median
        out["list_rss_kib"] = listing.maxrss_kib
    ctx.summary.setdefault("commands", {})[prefix] = out
    return out


def fixed_cost(ctx: Context, cli: Cli) -> float:
    """Wall of submitting a 1-image job: process start, imports, job creation, fsyncs."""
    job = make_job(ctx.tmp / "one.json", 1, lambda rng: ctx.images.tiny[0], ctx.server.url(""))
    walls = []
    for _ in range(ctx.args.repeat):
        m, _, _ = submit_checked(ctx, cli, job, "--gpu-delay", "0")
        walls.append(m.wall)
    cost = statistics.median(walls)
    say(f"  fixed cost: submit of a 1-image job takes {fmt_s(cost)} (median of {len(walls)})")
    ctx.summary["fixed_cost_s"] = cost
    return cost


def compare(ctx: Context, cli: Cli, fixed: float) -> float | None:
    """retailpulse --gpu-delay 0 vs the reference clients, same URLs, same run."""
    n = ctx.args.images
    workers = ctx.args.workers or DEFAULT_WORKERS
    job = make_job(
        ctx.tmp / f"job-{n}.json", n, lambda rng: pick_photo(ctx.images, rng), ctx.server.url("")
    )
    mb = job.bytes_total / 1e6
    say(
        f"== download comparison: {n:,} images, {mb:,.0f} MB "
        f"(avg {job.bytes_total / n / 1e3:.0f} KB), {job.visits:,} visits, {workers} workers"
    )
    out: dict[str, Any] = {"images": n, "mb": mb, "workers": workers}
    out["server_ceiling"] = ceilings(ctx, job)
    refs, runs = compare_rounds(ctx, cli, job, workers, fixed)
    rp_rate = summarize(ctx, out, job, refs, runs, fixed)
    job_id = runs[-1][1]
    if job_id:
        say("  commands on the finished job (process start included):")
        out["commands"] = command_times(ctx, cli, job_id, "compare")
    ctx.summary["compare"] = out
    return rp_rate


def ceilings(ctx: Context, job: Job) -> list[dict[str, Any]]:
    say("  server ceiling (asyncio download-only clients, no Pillow):")
    found = []
    for clients, conns in ((1, 64), (2, 32)):
        c = server_ceiling(ctx.python, job.urls, ctx.tmp, clients, conns)
        found.append(c)
        say(
            f"    {clients} client process(es) x {conns} connections: {c['img_per_s']:,.0f} img/s, "
            f"{c['mb_per_s']:,.0f} MB/s ({c['errors']} errors)"
        )
    return found


Runs = list[tuple[Measured, str]]


def compare_rounds(
    ctx: Context, cli: Cli, job: Job, workers: int, fixed: float
) -> tuple[dict[str, list[RefResult]], Runs]:
    """Rounds alternate every reference client and retailpulse, each a fresh process."""
    args = ctx.args
    n = len(job.urls)
    flags = ["--gpu-delay", "0", *ctx.downloads_flag()]
    if args.workers:
        flags += ["--workers", str(args.workers)]
    rounds = max(1, args.rounds)
    say(
        f"  {rounds} round(s), each: every reference client, then `retailpulse submit JOB "
        f"{' '.join(flags)}`; each client is a fresh process; references download, then "
        "read the size with Pillow Image.open(...).size"
    )
    refs: dict[str, list[RefResult]] = {kind: [] for kind in REFERENCES}
    runs: Runs = []
    for rnd in range(1, rounds + 1):
        for kind in REFERENCES:
            refs[kind].append(reference_round(ctx, job, kind, workers, rnd))
        m, job_id, _ = submit_checked(ctx, cli, job, *flags)
        runs.append((m, job_id))
        mb = job.bytes_total / 1e6
        say(
            f"    [{rnd}] {'retailpulse submit (whole process)':<46} {n / m.wall:>6,.0f} img/s "
            f"{mb / m.wall:>5,.0f} MB/s {m.wall:6.2f}s CPU {m.cpu_user + m.cpu_sys:4.1f}s "
            f"RSS {fmt_mb(m.maxrss_kib)} (user {m.cpu_user:.1f}s, sys {m.cpu_sys:.1f}s, "
            f"{(m.cpu_user + m.cpu_sys) / n * 1e3:.2f} ms CPU/image; "
            f"{n / max(m.wall - fixed, 1e-9):,.0f} img/s without the {fixed:.2f}s fixed cost)"
        )
    return refs, runs


def reference_round(ctx: Context, job: Job, kind: str, workers: int, rnd: int) -> RefResult:
    n = len(job.urls)
    urls = job.urls[: ctx.args.seq_cap] if kind == "sequential" else job.urls
    r = run_reference(ctx.python, kind, urls, 1 if kind == "sequential" else workers, ctx.tmp)
    capped = f" (first {len(urls):,}, rate extrapolated)" if len(urls) < n else ""
    say(
        f"    [{rnd}] {r.label:<46} {r.rate:>6,.0f} img/s {r.mb_per_s:>5,.0f} MB/s "
        f"{r.elapsed:6.2f}s CPU {r.cpu:4.1f}s RSS {fmt_mb(r.maxrss_kib)}{capped}"
    )
    if r.errors or r.images != len(urls):
        ctx.problems.append(f"reference {kind}: {r.images}/{len(urls)} ({r.first_error})")
        say(f"      !! {r.images}/{len(urls)} images; {r.first_error}")
    return r


def median_rate(results: list[RefResult]) -> float:
    return statistics.median(r.rate for r in results)


def summarize(
    ctx: Context,
    out: dict[str, Any],
    job: Job,
    refs: dict[str, list[RefResult]],
    runs: Runs,
    fixed: float,
) -> float:
    """Medians, ratios to every reference, and the targets; returns retailpulse's img/s."""
    n, mb = len(job.urls), job.bytes_total / 1e6
    rp_walls = [m.wall for m, _ in runs]
    rp_wall = statistics.median(rp_walls)
    rp_rate = n / rp_wall
    out["references"] = {
        kind: {
            "label": REFERENCES[kind][0],
            "img_per_s": median_rate(results),
            "img_per_s_runs": [r.rate for r in results],
            "mb_per_s": statistics.median(r.mb_per_s for r in results),
            "peak_rss_kib": max(r.maxrss_kib for r in results),
            "cpu_s": statistics.median(r.cpu for r in results),
        }
        for kind, results in refs.items()
    }
    rp = out["retailpulse"] = {
        "runs_s": rp_walls,
        "img_per_s": rp_rate,
        "img_per_s_runs": [n / w for w in rp_walls],
        "img_per_s_without_fixed_cost": n / max(rp_wall - fixed, 1e-9),
        "mb_per_s": mb / rp_wall,
        "peak_rss_kib": max(m.maxrss_kib for m, _ in runs),
        "cpu_s": statistics.median(m.cpu_user + m.cpu_sys for m, _ in runs),
        "job_id": runs[-1][1],
    }
    say(
        f"  median of {len(runs)}: retailpulse {rp_rate:,.0f} img/s, {mb / rp_wall:,.0f} MB/s, "
        f"peak RSS {fmt_mb(rp['peak_rss_kib'])}; ratio to each reference (median rates):"
    )
    for kind, results in refs.items():
        rate = median_rate(results)
        ratio = rp_rate / rate if rate else float("nan")
        say(f"    {ratio:5.2f}x  {REFERENCES[kind][0]} ({rate:,.0f} img/s)")
        rp[f"ratio_{kind}"] = ratio
    best_ceiling = max(c["img_per_s"] for c in out["server_ceiling"])
    say(
        f"    {rp_rate / best_ceiling:5.2f}x  server ceiling ({best_ceiling:,.0f} img/s, no Pillow)"
    )
    judge_compare(ctx, rp, rp_rate, refs, n)
    return float(rp_rate)


def judge_compare(
    ctx: Context, rp: dict[str, Any], rp_rate: float, refs: dict[str, list[RefResult]], n: int
) -> None:
    one_read = median_rate(refs["one-read"])
    cpu_ms = rp["cpu_s"] / n * 1e3
    want = targets.GPU_DELAY_0_VS_ONE_READ
    ctx.target(
        f"gpu-delay 0: >= {want:g}x one-call-read requests",
        f"{rp_rate / one_read:.2f}x ({rp_rate:,.0f} vs {one_read:,.0f} img/s, medians; "
        f"{rp['img_per_s_without_fixed_cost'] / one_read:.2f}x without "
        f"retailpulse's fixed cost; {cpu_ms:.2f} ms CPU/image)",
        rp_rate >= want * one_read,
    )
    ctx.target(
        "ratio to http.client ceiling (report only)",
        f"{rp_rate / median_rate(refs['http.client']):.2f}x",
        None,
    )
