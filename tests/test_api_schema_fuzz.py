"""schemathesis against the OpenAPI schema the app serves (/api/schema/): every operation, the
collector's included, with a bounded and derandomized number of examples; none may answer 5xx."""

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from consent.models import Purpose
from consent.services import refresh_policy_cache
from tests.tracking.test_collector_input import basic
from tracking.services import SourceKeys

EXAMPLES_PER_OPERATION = 20


# Loaded from the application, in this process, when the module is collected.
schema = schemathesis.openapi.from_wsgi("/api/schema/", WSGIHandler())


@pytest.fixture(autouse=True)
def _requests_keep_the_connection() -> Iterator[None]:
    """The application's requests share the test's transaction, which (as Django's test client
    has it) no request may close."""
    for signal in (signals.request_started, signals.request_finished):
        signal.disconnect(close_old_connections)
    try:
        yield
    finally:
        for signal in (signals.request_started, signals.request_finished):
            signal.connect(close_old_connections)


def _authorization(case: Any, keys: SourceKeys) -> dict[str, str]:
    """The key an operation asks for: the write key (HTTP Basic) where it takes one, else the secret."""
    security = case.operation.definition.raw.get("security") or [{}]
    if any("writeKey" in requirement for requirement in security):
        return {"Authorization": basic(keys.write_key)}
    return {"Authorization": f"Bearer {keys.secret_key}"}


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@pytest.mark.django_db
def test_no_operation_answers_a_server_error(case: Any, source_keys: SourceKeys) -> None:
    Purpose.objects.filter(key="analytics").update(opt_out_jurisdictions=["*"])
    refresh_policy_cache()
    case.call_and_validate(headers=_authorization(case, source_keys), checks=[not_a_server_error])
