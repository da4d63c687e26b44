"""Memory scaling on big jobs, and validation of a big job file."""

from __future__ import annotations

from typing import Any

import targets
from benchutil import fmt_mb, fmt_s, say
from jobfiles import make_job
from measure import Cli, show_timed, time_command
from sections import Context, command_times, submit_checked


def scale(ctx: Context, cli: Cli) -> None:
    sizes = ctx.args.scale
    say(
        f"== memory scaling: --gpu-delay 0 on jobs of {', '.join(f'{s:,}' for s in sizes)} "
        "tiny (64x48 PNG) images, one jobs dir"
    )
    rows = []
    last_id = ""
    for n in sizes:
        job = make_job(
            ctx.tmp / f"scale-{n}.json",
            n,
            lambda rng: rng.choice(ctx.images.tiny),
            ctx.server.url(""),
            seed=13,
        )
        m, job_id, _ = submit_checked(ctx, cli, job, "--gpu-delay", "0")
        last_id = job_id or last_id
        quarters = [m.rss_at(f) for f in (0.25, 0.5, 0.75, 1.0)]
        shown = ", ".join(fmt_mb(q) if q else "-" for q in quarters)
        say(
            f"  {n:>9,} images: wall {m.wall:7.1f}s ({n / m.wall:,.0f} img/s), peak RSS "
            f"{fmt_mb(m.maxrss_kib)}; RSS at 25/50/75/100% of the run: {shown}; "
            f"job file {job.path.stat().st_size / 1e6:.1f} MB"
        )
        rows.append(
            {
                "images": n,
                "wall_s": m.wall,
                "peak_rss_kib": m.maxrss_kib,
                "rss_quarters_kib": quarters,
                "job_id": job_id,
            }
        )
    if len(rows) >= 2:
        grow = rows[-1]["peak_rss_kib"] - rows[0]["peak_rss_kib"]
        say(f"  peak RSS grows by {fmt_mb(grow)} from {sizes[0]:,} to {sizes[-1]:,} images")
        ctx.target(
            f"RSS growth {sizes[0]:,} -> {sizes[-1]:,} < {targets.SCALE_GROWTH_MB} MB",
            fmt_mb(grow),
            grow < targets.SCALE_GROWTH_MB * targets.MB,
        )
    biggest = rows[-1]
    ctx.target(
        f"peak RSS of a {sizes[-1]:,}-image job < {targets.SCALE_PEAK_RSS_MB} MB",
        fmt_mb(biggest["peak_rss_kib"]),
        biggest["peak_rss_kib"] < targets.SCALE_PEAK_RSS_MB * targets.MB,
    )
    out: dict[str, Any] = {"rows": rows}
    if last_id:
        say(f"  commands on the {sizes[-1]:,}-image job, jobs dir holding all of these jobs:")
        times = command_times(ctx, cli, last_id, "scale")
        out["commands"] = times
        ctx.target(
            f"status on the biggest job < {targets.STATUS_S:g} s",
            fmt_s(times["status_s"]),
            times["status_s"] < targets.STATUS_S,
        )
        if times.get("list_s") is not None:
            ctx.target(
                "list with the biggest job < 0.25 s", fmt_s(times["list_s"]), times["list_s"] < 0.25
            )
        else:
            ctx.target("list with the biggest job < 0.25 s", "no `list` command", None)
    ctx.summary["scale"] = out


def validation(ctx: Context, cli: Cli) -> None:
    visits = ctx.args.validate_visits
    say(f"== validation of a {visits:,}-visit job file")
    rng_urls = ctx.images.tiny
    bad = make_job(
        ctx.tmp / f"validate-{visits}-bad.json",
        0,
        lambda rng: rng.choice(rng_urls),
        ctx.server.url(""),
        seed=17,
        count_offset=1,
        n_visits=visits,
    )
    out: dict[str, Any] = {
        "visits": bad.visits,
        "images": len(bad.urls),
        "file_mb": bad.path.stat().st_size / 1e6,
    }
    say(f"  job file: {bad.visits:,} visits, {len(bad.urls):,} image URLs, {out['file_mb']:.1f} MB")
    if cli.has_command("validate"):
        good = make_job(
            ctx.tmp / f"validate-{visits}.json",
            0,
            lambda rng: rng.choice(rng_urls),
            ctx.server.url(""),
            seed=17,
            n_visits=visits,
        )
        t = time_command(
            "validate JOB_FILE", [*cli.base, "validate", str(good.path)], ctx.args.repeat
        )
        show_timed(t, 2.0)
        out["validate_s"] = t.median
        ctx.target(
            f"validation of {visits:,} visits < 2 s (validate)",
            fmt_s(t.median),
            t.median < 2.0 and t.rc == 0,
        )
    else:
        say("  (no `validate` command: timing a submit whose count is off by one instead)")
    t = time_command(
        "submit JOB_FILE (wrong count, exit 3)",
        cli.argv("submit", str(bad.path)),
        ctx.args.repeat,
        ok_codes=(3,),
    )
    show_timed(t, 2.0)
    if t.rc != 3:
        ctx.problems.append(f"invalid submit exited {t.rc}, expected 3")
    out["submit_invalid_s"] = t.median
    out["submit_invalid_rss_kib"] = t.maxrss_kib
    ctx.target(
        f"submit validation of {visits:,} visits < 2 s",
        fmt_s(t.median),
        t.median < 2.0 and t.rc == 3,
    )
    ctx.summary["validation"] = out
