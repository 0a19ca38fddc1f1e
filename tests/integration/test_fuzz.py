"""Schemathesis against both apps' OpenAPI specs, on real uvicorn processes (service on Postgres).

Every operation gets valid and invalid generated cases (headers, path, query, body); each answer
must not be a server error (5xx other than the declared 503/504), and must conform to the spec:
a declared status code, content type, headers and body schema. Cases carry a valid admin token,
so the admin and control routes are fuzzed too; Schemathesis's ``ignored_auth`` check also sends
them without the token and with a wrong one and fails unless both are refused, and negative cases
that mangle the ``Authorization`` header must get the declared 401.

Each app runs in a process of its own, so nothing the fuzzer changes (fault knobs, a preset, a
hanging slow API) reaches other tests; after every state-changing admin case the app is reset,
so the next case meets it as it started. The figures are printed (``pytest -s``).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import CheckFunction
from schemathesis.core.result import Ok
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.conftest import ADMIN_TOKEN
from tests.support import Spawn

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
EXAMPLES_PER_OPERATION = 100
"""Hypothesis's cap per operation; operations with a small input space get fewer."""
TIMEOUT_S = 10.0
"""Per request; no route comes near it with these apps' settings."""
MIN_CASES = 1_000

CROSS_FIELD_RULES = {"PUT /admin/resilience"}
"""Operations whose body has rules across fields that JSON Schema cannot say (``base_delay_s``
≤ ``max_delay_s``, AIMD ``min_limit`` ≤ ``initial_limit`` ≤ ``max_limit``): a body valid by the
schema may still get 422 with the reason, so "schema-valid data is accepted" does not apply."""

Operation = APIOperation[Any, Any, Any, Any]
Seen = Counter[tuple[str, int]]
"""(operation, status code) → cases."""


def _fuzz_operation(
    operation: Operation,
    base_url: str,
    session: requests.Session,
    after_case: Callable[[], None],
    seen: Seen,
) -> None:
    label = f"{operation.method.upper()} {operation.path}"
    strategy = st.one_of(
        [
            operation.as_strategy(generation_mode=mode)
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        ]
    )
    excluded: list[CheckFunction] = []
    if label in CROSS_FIELD_RULES:
        excluded.append(positive_data_acceptance)

    @hypothesis.settings(
        max_examples=EXAMPLES_PER_OPERATION,
        derandomize=True,  # the same cases every run: CI is red for a change, never by luck
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis.given(case=strategy)
    def run(case: schemathesis.Case[Any]) -> None:
        try:
            response = case.call_and_validate(
                base_url=base_url,
                session=session,
                headers=AUTH,
                excluded_checks=excluded,
                timeout=TIMEOUT_S,
            )
        finally:
            after_case()
        seen[label, response.status_code] += 1

    run()


def fuzz(base_url: str, reset_paths: Sequence[str]) -> Seen:
    """Fuzz every operation the app at ``base_url`` declares; POST ``reset_paths`` after each
    case of a state-changing operation under the same prefix (admin or control)."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    prefix = "/" + reset_paths[0].split("/")[1]
    seen: Seen = Counter()
    with requests.Session() as session:

        def reset() -> None:
            for path in reset_paths:
                answer = session.post(base_url + path, headers=AUTH, timeout=TIMEOUT_S)
                assert answer.status_code == 200, answer.text

        for result in schema.get_all_operations():
            assert isinstance(result, Ok), f"the spec at {base_url} is invalid: {result}"
            operation = result.ok()
            mutates = operation.method.upper() != "GET" and operation.path.startswith(prefix)
            _fuzz_operation(operation, base_url, session, reset if mutates else _nothing, seen)
    return seen


def _nothing() -> None:
    return None


def _report(app: str, seen: Seen, elapsed_s: float) -> int:
    total = sum(seen.values())
    print(f"\n{app}: {total} cases in {elapsed_s:.1f} s, 0 server errors")
    for (label, status), count in sorted(seen.items()):
        print(f"  {label:40} {status}  {count}")
    return total


def test_both_apps_survive_fuzzing_and_answer_as_declared(
    spawn_service: Spawn, spawn_slow_api: Spawn
) -> None:
    fast = {"BRINK_SLOW_API__BASE_LATENCY_S": "0.001", "BRINK_SLOW_API__JITTER_SIGMA": "0"}
    behind_service = spawn_slow_api(fast)
    service = spawn_service({"BRINK_EXTERNAL__URL": behind_service.base_url})
    slow_api = spawn_slow_api(fast)

    total = 0
    for app, base_url, reset_paths in (
        ("service", service.base_url, ("/admin/resilience/reset", "/admin/faults/reset")),
        ("slow API", slow_api.base_url, ("/control/reset",)),
    ):
        started = time.perf_counter()
        seen = fuzz(base_url, reset_paths)
        total += _report(app, seen, time.perf_counter() - started)
    assert total >= MIN_CASES
