"""What fuzzing (``test_fuzz.py``) and the safe-defaults checks found, kept as plain tests.

1. A body that is not UTF-8/JSON got a 400 no route declared (Schemathesis: undocumented status
   code). It stays a 400 with a reason, now declared on every route that takes a body.
2. ``PUT /admin/resilience`` with knobs each valid by the schema but not together (a retry base
   delay above its maximum, a breaker's ``min_calls`` above its window) is 422 naming the knobs,
   and changes nothing. JSON Schema cannot say that, so it is the one operation where the
   fuzzer's "schema-valid data is accepted" check does not apply.
3. A body over the limit got a plain-text 413 (FastAPI's limiter replaces the app's answer when
   ``Content-Length`` declares too much); the slow API had no limit at all. Now both apps answer
   413 with the JSON Problem body, declared, for declared and chunked bodies alike.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx2
import pytest

from tests.conftest import ADMIN_TOKEN
from tests.support import Served

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}
BODY_ROUTES = [
    ("service", "POST", "/orders"),
    ("service", "PUT", "/admin/resilience"),
    ("service", "PUT", "/admin/faults"),
    ("slow API", "PUT", "/control"),
]


@pytest.fixture(scope="module")
def apps(service: Served, slow_api: Served) -> dict[str, Served]:
    return {"service": service, "slow API": slow_api}


def _headers() -> dict[str, str]:
    return {**AUTH, "Idempotency-Key": str(uuid.uuid4())}


def _declared(client: httpx2.Client, method: str, path: str) -> dict[str, object]:
    responses: dict[str, object] = client.get("/openapi.json").json()["paths"][path][
        method.lower()
    ]["responses"]
    return responses


@pytest.mark.parametrize(("app", "method", "path"), BODY_ROUTES)
def test_a_body_that_is_not_json_is_a_declared_400_with_a_reason(
    apps: dict[str, Served], app: str, method: str, path: str
) -> None:
    with httpx2.Client(base_url=apps[app].base_url, timeout=10) as client:
        # Not UTF-8: 400 (the fuzzer's case); UTF-8 but not JSON: 422 like any invalid body.
        for body, status in ((b"\x80(LrR", 400), (b"\xc3\x28", 400), (b"{not json", 422)):
            answer = client.request(method, path, content=body, headers=_headers())
            assert answer.status_code == status, answer.text
            assert answer.json()["detail"]
            assert str(status) in _declared(client, method, path)


def test_knobs_valid_alone_but_not_together_are_422_naming_them(apps: dict[str, Served]) -> None:
    with httpx2.Client(base_url=apps["service"].base_url, timeout=10) as client:
        before = client.get("/admin/resilience", headers=AUTH).json()
        answer = client.put(
            "/admin/resilience",
            json={"retry": {"base_delay_s": 4.2, "max_delay_s": 0.5}, "breaker": {"min_calls": 90}},
            headers=AUTH,
        )
        assert answer.status_code == 422, answer.text
        reasons = " ".join(problem["msg"] for problem in answer.json()["detail"])
        for knob in ("base_delay_s", "max_delay_s", "min_calls", "window"):
            assert knob in reasons
        assert client.get("/admin/resilience", headers=AUTH).json() == before


def _chunks(size: int) -> Iterator[bytes]:
    for _ in range(size // 1_000):
        yield b" " * 1_000


@pytest.mark.parametrize(("app", "method", "path"), BODY_ROUTES)
def test_a_body_over_the_limit_is_a_declared_json_413(
    apps: dict[str, Served], app: str, method: str, path: str
) -> None:
    size = 200_000  # over both apps' default limits (64 KiB service, 16 KiB slow API)
    with httpx2.Client(base_url=apps[app].base_url, timeout=10) as client:
        for body in (b" " * size, _chunks(size)):  # with a Content-Length, and chunked
            answer = client.request(method, path, content=body, headers=_headers())
            assert answer.status_code == 413, answer.text
            assert answer.headers["content-type"] == "application/json"
            assert "exceeds the limit" in answer.json()["detail"]
        assert "413" in _declared(client, method, path)
        assert client.get("/healthz").status_code == 200  # and the server is fine
