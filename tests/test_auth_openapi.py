"""The OpenAPI document with authentication on, exercised by schemathesis: with an admin's
token and with none, every answer (401s, 403s and 429s included) is one the document
describes, and none is a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis

from .authutil import bearer, make_tokens
from .serveutil import Served, clean_env
from .test_serve_docs import CHECKS


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, str]]:
    """Jobs name no store of this master: no image is ever fetched. A low rate, so that
    429s are among the answers checked."""
    tmp = tmp_path_factory.mktemp("auth-openapi")
    master = tmp / "stores.csv"
    master.write_text("AreaCode,StoreName,StoreID\nA1,Nowhere,S-NOT-GENERATED\n")
    token = make_tokens(tmp / "jobs", root="admin")["root"]
    srv = Served(
        "--store-master", str(master), "--gpu-delay", "0", "--api-rate", "40/s",
        "--api-burst", "20", env=clean_env(tmp, tmp / "jobs"), auth=True,
    )  # fmt: skip
    yield srv, token
    assert srv.stop() == 0


@pytest.mark.parametrize("with_token", [True, False], ids=["admin", "anonymous"])
def test_every_answer_is_inside_the_documented_schema(
    api: tuple[Served, str], with_token: bool
) -> None:
    srv, token = api
    headers = bearer(token) if with_token else {}
    schema = schemathesis.openapi.from_url(srv("/openapi.json"))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 13
    seen: set[int] = set()
    for operation in operations:

        @hypothesis.given(case=operation.as_strategy())
        @hypothesis.settings(
            max_examples=8,
            deadline=None,
            suppress_health_check=list(hypothesis.HealthCheck),
            derandomize=True,
            database=None,
        )
        def answers_within_the_schema(case: Any) -> None:
            response = case.call_and_validate(checks=CHECKS, headers=headers)
            seen.add(response.status_code)

        answers_within_the_schema()
    if not with_token:
        assert 401 in seen and not seen & {201, 202}  # 200: only the probes
    else:
        assert {200, 202} <= seen
