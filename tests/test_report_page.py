"""The HTML report in a real browser (headless Chromium driven by Playwright): it fits a
phone-sized window and a desktop one (issue 17 #20). `.ci/run` installs Chromium."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, sync_playwright

from .conftest import KNOWN, Cli, visit, write_job
from .imageserver import ImageServer

IMAGES = Path(__file__).resolve().parent.parent / "examples" / "images"
COUNTS = {"http_404": 7, "file_not_found": 3, "truncated_image": 2, "store_not_found": 1}

MEASURE = """() => {
  const box = e => { const r = e.getBoundingClientRect(); return [r.left, r.right, r.width]; };
  const shown = e => e.getClientRects().length > 0 && getComputedStyle(e).visibility !== 'hidden';
  return {
    scroll: document.documentElement.scrollWidth, inner: innerWidth,
    counts: [...document.querySelectorAll('.chart .count')].filter(shown)
      .map(e => [e.textContent, ...box(e)]),
    bars: [...document.querySelectorAll('rect.bar')].filter(shown).map(box),
    jobCells: [...document.querySelectorAll('#jobs td')].filter(shown)
      .map(e => [e.textContent, ...box(e)]),
  };
}"""


@pytest.fixture(scope="module")
def browser() -> Any:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "these tests need Chromium: .ci/run installs it (apt-get install chromium)"
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield launched
        launched.close()


def _page_with_every_kind_of_failure(cli: Cli, server: ImageServer, tmp_path: Path) -> Path:
    ok = server.url("/img/40x30.png")
    job = write_job(
        tmp_path / "week.json",
        [
            visit(KNOWN[0], ok, *(server.url(f"/status/404?p={i}") for i in range(7))),
            visit(KNOWN[1], *(str(tmp_path / f"gone-{i}.jpg") for i in range(3))),
            visit(KNOWN[2], *[str(IMAGES / "broken-truncated.jpg")] * 2),
            visit("S99999999", ok),
        ],
    )
    assert cli("submit", str(job), "--gpu-delay", "0", "--retries", "0").exit_code == 1
    page = tmp_path / "report.html"
    assert cli("report", "--html", str(page)).exit_code == 0
    return page


@pytest.mark.parametrize("width", [420, 1280])
def test_report_page_fits_the_window_and_shows_every_number(
    browser: Browser, cli: Cli, server: ImageServer, tmp_path: Path, width: int
) -> None:
    page_file = _page_with_every_kind_of_failure(cli, server, tmp_path)
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(page_file.as_uri())
    m = page.evaluate(MEASURE)
    page.close()
    assert m["scroll"] <= m["inner"] == width, m  # no sideways scrolling
    # one number per bar, all on screen, in the order of the counts
    assert [c[0] for c in m["counts"]] == [str(n) for n in COUNTS.values()], m
    for _text, left, right, _w in m["counts"]:
        assert left >= 0 and right <= width, m
    # bar lengths follow the counts: the longest bars are not clipped to one length
    widths = [w for _left, _right, w in m["bars"]]
    assert len(widths) == len(COUNTS) and widths == sorted(widths, reverse=True), m
    assert len(set(round(w) for w in widths)) == len(widths), m
    ratio = widths[1] / widths[0]
    assert abs(ratio - 3 / 7) < 0.05, m
    for _left, _right, w in m["bars"]:
        assert w > 0
    # every figure of the jobs table is on screen without scrolling
    assert m["jobCells"], m
    for _text, left, right, _w in m["jobCells"]:
        assert left >= 0 and right <= width, m
    texts = [c[0] for c in m["jobCells"]]
    assert any(t.endswith("s") and t[:-1].replace(".", "").isdigit() for t in texts), texts
