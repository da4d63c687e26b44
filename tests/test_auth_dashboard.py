"""The dashboard in headless Chromium (Playwright) against a real `retailpulse serve`:
login with a token, the user's jobs only, newest first, with progress, failures by code
and links; refused without a token; the cookie HttpOnly and SameSite=Strict; the list
also renders with JavaScript off."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser, Page, sync_playwright

from .authutil import Client, make_tokens
from .conftest import KNOWN
from .imageserver import ImageServer
from .serveutil import Served, clean_env, job_doc, visit

EVIL = '<img src=x onerror="document.title=1">'


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "these tests need Chromium: .ci/run installs it (apt-get install chromium)"
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory, server: ImageServer
) -> Iterator[tuple[Served, dict[str, str], dict[str, list[str]]]]:
    tmp = tmp_path_factory.mktemp("dash")
    tokens = make_tokens(tmp / "jobs", alice="submitter", bob="submitter")
    api = Served(
        "--allow-private-networks", "--gpu-delay", "0", "--retries", "0",
        env=clean_env(tmp, tmp / "jobs"), auth=True,
    )  # fmt: skip
    alice, bob = Client(api, tokens["alice"]), Client(api, tokens["bob"])
    ok, missing = server.url("/img/48x36.png?d"), server.url("/status/404?d")
    made: dict[str, list[str]] = {"alice": [], "bob": []}
    made["alice"].append(alice.submit(job_doc(visit(KNOWN[0], ok, missing, ok + "2"))))
    weird = {**visit(EVIL, ok), "store_id": EVIL}  # an unknown store whose id is markup
    made["alice"].append(alice.submit(job_doc(visit(KNOWN[1], ok), weird)))
    made["bob"].append(bob.submit(job_doc(visit(KNOWN[2], ok))))
    for who, ids in made.items():
        for job_id in ids:
            (alice if who == "alice" else bob).wait(job_id)
    yield api, tokens, made
    assert api.stop() == 0


def log_in(page: Page, api: Served, token: str) -> None:
    page.goto(api("/"))
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    page.wait_for_selector("#jobs")


def rows(page: Page) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = page.eval_on_selector_all(
        "#jobs tbody tr",
        """trs => trs.map(tr => ({
            id: tr.dataset.job,
            state: tr.querySelector('.state').textContent,
            progress: [tr.querySelector('progress').value, tr.querySelector('progress').max],
            codes: tr.querySelector('.codes').textContent,
            links: [...tr.querySelectorAll('a')].map(a => a.getAttribute('href')),
        }))""",
    )
    return result


def test_login_shows_the_users_jobs_newest_first(
    browser: Browser, site: tuple[Served, dict[str, str], dict[str, list[str]]]
) -> None:
    api, tokens, made = site
    context = browser.new_context()
    page = context.new_page()
    log_in(page, api, tokens["alice"])
    shown = rows(page)
    assert [r["id"] for r in shown] == made["alice"][::-1]  # newest first, no bob job
    first = next(r for r in shown if r["id"] == made["alice"][0])
    assert first["state"] == "failed" and first["progress"] == [3, 3]
    assert "http_404 x1" in first["codes"]
    assert first["links"] == [
        f"/v1/jobs/{made['alice'][0]}/results",
        f"/v1/jobs/{made['alice'][0]}/results?format=csv",
        f"/report?job={made['alice'][0]}",
    ]
    second = next(r for r in shown if r["id"] == made["alice"][1])
    assert "store_not_found x1" in second["codes"]
    assert page.title() == "retailpulse: jobs"  # the markup in the store id did not run
    assert "alice (submitter)" in page.inner_text("body")
    # the links work with the browser's cookie: results (a download) and the HTML report
    results = context.request.get(api(first["links"][0]))
    assert results.status == 200 and len(results.text().splitlines()) == 3
    report = page.goto(api(first["links"][2]))
    assert report is not None and report.status == 200 and "http_404" in report.text()
    cookie = next(c for c in context.cookies() if c["name"] == "retailpulse_token")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and not cookie["secure"]
    assert page.evaluate("document.cookie") == ""  # no script can read the token
    context.close()


def test_refused_without_a_token_or_with_a_bad_one(
    browser: Browser, site: tuple[Served, dict[str, str], dict[str, list[str]]]
) -> None:
    api, _tokens, made = site
    page = browser.new_page()
    page.goto(api("/"))
    assert page.query_selector("#jobs") is None and page.query_selector("input[name=token]")
    body = page.content()
    assert not any(job_id in body for ids in made.values() for job_id in ids)
    page.fill("input[name=token]", "rp_wrong")
    page.click("button[type=submit]")
    assert page.inner_text("#login-error") == "invalid or revoked token"
    assert page.query_selector("#jobs") is None
    page.close()
    assert requests.get(api("/v1/jobs"), timeout=10).status_code == 401


def test_the_job_list_renders_with_javascript_off(
    browser: Browser, site: tuple[Served, dict[str, str], dict[str, list[str]]]
) -> None:
    api, tokens, made = site
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    log_in(page, api, tokens["bob"])
    text = page.inner_text("#jobs")
    assert made["bob"][0] in text and "completed" in text
    assert not any(job_id in text for job_id in made["alice"])
    context.close()


def test_a_cookie_cannot_change_anything_and_a_foreign_login_is_refused(
    site: tuple[Served, dict[str, str], dict[str, list[str]]],
) -> None:
    api, tokens, made = site
    cookies = {"retailpulse_token": tokens["alice"]}
    assert requests.get(api("/v1/jobs"), cookies=cookies, timeout=10).status_code == 200
    r = requests.post(api(f"/v1/jobs/{made['alice'][0]}/retry"), cookies=cookies, timeout=10)
    assert r.status_code == 401  # POSTs need the Authorization header (no CSRF by cookie)
    foreign = requests.post(
        api("/login"),
        data={"token": tokens["alice"]},
        headers={"Origin": "https://evil.example"},
        allow_redirects=False,
        timeout=10,
    )
    assert foreign.status_code == 403 and "set-cookie" not in foreign.headers


def test_the_cookie_is_secure_when_served_over_tls(
    site: tuple[Served, dict[str, str], dict[str, list[str]]],
) -> None:
    """Behind a TLS-terminating proxy on this machine (uvicorn trusts X-Forwarded-Proto
    from 127.0.0.1 only), the request is https and the cookie is marked Secure."""
    api, tokens, _made = site

    def login(**headers: str) -> str:
        r = requests.post(
            api("/login"),
            data={"token": tokens["bob"]},
            headers=headers,
            allow_redirects=False,
            timeout=10,
        )
        assert r.status_code == 303
        return r.headers["set-cookie"].lower()

    over_tls = login(**{"X-Forwarded-Proto": "https"})
    assert "httponly" in over_tls and "samesite=strict" in over_tls and "secure" in over_tls
    plain = login()
    assert "httponly" in plain and "secure" not in plain.replace("samesite=strict", "")


def test_the_page_refreshes_itself_while_a_job_runs(tmp_path: Any, server: ImageServer) -> None:
    tokens = make_tokens(tmp_path / "jobs", carol="submitter")
    api = Served(
        "--allow-private-networks", "--gpu-delay", "3", env=clean_env(tmp_path, tmp_path / "jobs"),
        auth=True,
    )  # fmt: skip
    try:
        carol = Client(api, tokens["carol"])
        job_id = carol.submit(job_doc(visit(KNOWN[0], server.url("/img/48x36.png?r"))))
        page = carol.get("/", cookies={"retailpulse_token": tokens["carol"]}).text
        assert '<meta http-equiv="refresh" content="5">' in page and job_id in page
        carol.wait(job_id)
        page = carol.get("/", cookies={"retailpulse_token": tokens["carol"]}).text
        assert "http-equiv" not in page and "completed" in page
    finally:
        api.kill()
