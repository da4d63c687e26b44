"""The GPU-delay curve: wall time against the ideal sum(delays)/workers."""

from __future__ import annotations

from collections.abc import Sequence

import targets
from benchutil import DEFAULT_DELAY, fmt_mb, say
from jobfiles import make_job, pick_photo
from measure import Cli
from sections import Context, submit_checked


def list_schedule(delays: Sequence[float], workers: int) -> float:
    """Makespan when images start in job order on the first free worker, downloads free:
    the best a pool that hands out images in order can do (sum/workers plus the tail)."""
    import heapq

    free = [0.0] * workers
    for d in delays:
        heapq.heappush(free, heapq.heappop(free) + d)
    return max(free)


def gpu_curve(ctx: Context, cli: Cli, fixed: float) -> None:
    args = ctx.args
    n = args.curve_images
    lo, hi = DEFAULT_DELAY
    seed = args.seed
    delays = targets.gpu_delays(seed, range(n), lo, hi)
    total = sum(delays)
    job = make_job(
        ctx.tmp / f"curve-{n}.json",
        n,
        lambda rng: pick_photo(ctx.images, rng),
        ctx.server.url(""),
        seed=11,
    )
    say(
        f"== GPU-delay curve: {n:,} images, --gpu-delay {lo:g}:{hi:g} --seed {seed} "
        f"(sum of delays {total:.1f}s, longest {max(delays):.3f}s)"
    )
    m0, _, _ = submit_checked(ctx, cli, job, "--gpu-delay", "0")
    say(
        f"  the same job at --gpu-delay 0 (download and measure only, default workers): "
        f"{m0.wall:.2f}s ({n / m0.wall:,.0f} img/s)"
    )
    say(
        "  ideal = sum(delays)/workers; in-order = list-scheduling makespan (images start in "
        "order on the first free worker, downloads free)"
    )
    rows = []
    for w in args.gpu_curve:
        ideal = total / w
        in_order = list_schedule(delays, w)
        flags = ["--workers", str(w), "--seed", str(seed), "--gpu-delay", f"{lo:g}:{hi:g}"]
        m, _, _ = submit_checked(ctx, cli, job, *flags, *ctx.downloads_flag())
        net = m.wall - fixed
        row = {
            "workers": w,
            "ideal_s": ideal,
            "in_order_s": in_order,
            "wall_s": m.wall,
            "ratio": m.wall / ideal,
            "ratio_without_fixed_cost": net / ideal,
            "ratio_to_in_order": m.wall / in_order,
            "peak_rss_kib": m.maxrss_kib,
            "cpu_s": m.cpu_user + m.cpu_sys,
        }
        rows.append(row)
        name, within = targets.curve(n, w, m.wall, ideal, fixed)
        say(
            f"  workers {w:>4}: ideal {ideal:6.2f}s  in-order {in_order:6.2f}s  actual "
            f"{m.wall:6.2f}s  actual/ideal {m.wall / ideal:5.3f} (w/o {fixed:.2f}s fixed cost "
            f"{net / ideal:5.3f}; /in-order {m.wall / in_order:5.3f})  RSS "
            f"{fmt_mb(m.maxrss_kib)}  CPU {row['cpu_s']:.1f}s"
        )
        ctx.target(
            f"gpu-delay default, {name}",
            f"{m.wall / ideal:.3f}x ideal ({net / ideal:.3f}x w/o fixed cost; "
            f"{m.wall / in_order:.3f}x in-order)",
            within,
        )
    ctx.summary["gpu_curve"] = {
        "images": n,
        "seed": seed,
        "sum_delays_s": total,
        "download_only_s": m0.wall,
        "rows": rows,
    }
