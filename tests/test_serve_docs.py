"""The API's documentation: the OpenAPI document exercised by schemathesis (no 5xx, every
answer inside its documented status codes, content types and schemas), and /docs and
/redoc rendered in headless Chromium with every request staying on the server."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from schemathesis import checks

from .serveutil import Served, clean_env

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A server whose store master knows no store the generated jobs name: their images
    are never downloaded (no request leaves the machine, whatever URL is generated)."""
    tmp = tmp_path_factory.mktemp("docs")
    master = tmp / "stores.csv"
    master.write_text("AreaCode,StoreName,StoreID\nA1,Nowhere,S-NOT-GENERATED\n")
    args = ["--store-master", str(master), "--gpu-delay", "0", "--max-queued-jobs", "100000"]
    srv = Served(*args, env=clean_env(tmp, tmp / "jobs"))
    yield srv
    assert srv.stop() == 0


def test_the_document_describes_every_route_with_errors_and_examples(api: Served) -> None:
    doc = api.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    expected = {
        ("/api/submit/", "post"),
        ("/api/submit", "post"),
        ("/api/status", "get"),
        ("/v1/jobs", "post"),
        ("/v1/jobs", "get"),
        ("/v1/jobs/{job_id}", "get"),
        ("/v1/jobs/{job_id}/results", "get"),
        ("/v1/jobs/{job_id}/retry", "post"),
        ("/v1/jobs/{job_id}/cancel", "post"),
        ("/v1/report", "get"),
        ("/report", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
    }
    described = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert described == expected
    for path, method in expected:
        op = doc["paths"][path][method]
        assert op.get("summary") and op["responses"], (path, method)
        assert "422" not in op["responses"]
        for status, answer in op["responses"].items():
            assert answer.get("content") or status == "204", (path, method, status)
    submit = doc["paths"]["/v1/jobs"]["post"]
    body = submit["requestBody"]["content"]["application/json"]
    assert body["schema"]["required"] == ["count", "visits"] and body["example"]["count"] == 1
    error = submit["responses"]["409"]["content"]["application/json"]["schema"]
    assert error == {"$ref": "#/components/schemas/ErrorBody"}
    assert "Retry-After" in submit["responses"]["503"]["headers"]


CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]


def test_every_answer_is_inside_the_documented_schema(api: Served) -> None:
    """schemathesis's strategies, driven by hand: its pytest plugin does not run under
    pytest 9 (it sets a private attribute of test nodes)."""
    schema = schemathesis.openapi.from_url(api("/openapi.json"))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 13
    for operation in operations:

        @hypothesis.given(case=operation.as_strategy())
        @hypothesis.settings(
            max_examples=12,
            deadline=None,
            suppress_health_check=list(hypothesis.HealthCheck),
            derandomize=True,
            database=None,
        )
        def answers_within_the_schema(case: Any) -> None:
            case.call_and_validate(checks=CHECKS)

        answers_within_the_schema()


def chromium() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    assert Path(path).exists(), "Chromium is missing: apt-get install chromium (.ci/run does)"
    return path


@pytest.mark.parametrize(
    ("path", "ready", "shown"),
    [
        ("/docs", ".swagger-ui .opblock-summary-path", "/api/submit/"),
        ("/redoc", "[data-section-id^='tag/jobs']", "Submit a job"),
    ],
)
def test_the_docs_render_in_chromium_with_every_request_on_the_server(
    api: Served, path: str, ready: str, shown: str
) -> None:
    from playwright.sync_api import Route, sync_playwright

    elsewhere: list[str] = []

    def only_the_server(route: Route) -> None:
        url = route.request.url
        if url.startswith(api.url + "/") or url.startswith("data:"):
            route.continue_()
        else:
            elsewhere.append(url)
            route.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            page.route("**/*", only_the_server)
            failed: list[str] = []
            page.on("requestfailed", lambda request: failed.append(request.url))
            page.goto(api(path), wait_until="networkidle")
            page.wait_for_selector(ready, timeout=20_000)
            assert shown in page.inner_text("body")
            page.wait_for_load_state("networkidle")
        finally:
            browser.close()
    assert elsewhere == []
    assert failed == []
