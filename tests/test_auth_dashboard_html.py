"""The dashboard's HTML on its own: everything from a job is escaped, times read simply,
the page refreshes only while something runs."""

from __future__ import annotations

from html.parser import HTMLParser

from retailpulse_cli.ui import dashboard_html

EVIL = '"><script>alert(1)</script><img src=x onerror=alert(2)>'


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += attrs


def render(**job: object) -> str:
    base = {"job_id": "20261204-000000-000-abcd", "status": "completed", "created_at": None}
    return dashboard_html.jobs_page(
        EVIL, EVIL, [{**base, **job}], links=lambda j: [(EVIL, f"/x?{j}")]
    )


def test_nothing_from_a_job_or_a_user_becomes_markup() -> None:
    page = render(
        job_id=EVIL, status=EVIL, source=EVIL, created_at=EVIL, failures_by_code={EVIL: 2}
    )
    parsed = Tags()
    parsed.feed(page)
    assert "script" not in parsed.tags and "img" not in parsed.tags
    assert not any(name.startswith("on") for name, _ in parsed.attrs)
    assert "&lt;script&gt;" in page


def test_times_counts_and_refresh() -> None:
    page = render(
        created_at="2026-12-04T00:42:31.068Z", images_total=5, images_done=5, images_failed=4,
        failures_by_code={"http_404": 2, "truncated_image": 1, "store_not_found": 1},
    )  # fmt: skip
    assert "2026-12-04 00:42:31Z" in page and "5/5 images, 4 failed" in page
    assert page.index("http_404 x2") < page.index("store_not_found x1")
    assert "http-equiv" not in page
    assert 'http-equiv="refresh"' in render(status="queued")
    assert 'http-equiv="refresh"' in render(status="ongoing")


def test_no_jobs_and_the_login_form() -> None:
    empty = dashboard_html.jobs_page("a", "viewer", [], links=lambda j: [])
    assert 'id="no-jobs"' in empty and "<table" not in empty
    form = dashboard_html.login_page(EVIL)
    assert 'name="token" type="password"' in form and "<script>" not in form


def test_the_list_table_drops_the_owner_column_first_when_narrow() -> None:
    from retailpulse_cli.ui.job_list import cells_of, choose_layout

    rows = [
        cells_of(
            {
                "job_id": "20261204-004825-768-39a1",
                "created_at": "2026-12-04T00:48:25.768Z",
                "status": "completed",
                "images_total": 1,
                "images_done": 1,
                "images_failed": 0,
                "owner": "dashboard-viewer",
                "source": "<http>",
            }
        )
    ]
    assert "owner" in choose_layout(rows, 160).columns
    narrow = choose_layout(rows, 80).columns
    assert "owner" not in narrow and "source" in narrow
    rows[0]["owner"] = "-"  # no job with an owner (the CLI's): no column
    assert "owner" not in choose_layout(rows, 160).columns
