"""Schemathesis fuzzes every operation of the OpenAPI schema: no 500s, every answer as declared."""

import os
import tempfile

import schemathesis
from hypothesis import HealthCheck, settings
from sample_runs import make_runs
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

import epochal
from epochal.server import create_app

# Built when the module is collected: schemathesis parametrizes from the schema at that time.
_folder = tempfile.TemporaryDirectory(prefix="epochal-fuzz-")
_store = epochal.Store(f"{_folder.name}/store")
make_runs(_store)
schema = schemathesis.openapi.from_asgi("/api/openapi.json", create_app(_store, static_dir=None))


@schema.parametrize()
# Random examples on a developer's machine keep finding new cases; the same ones on CI keep it steady.
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=bool(os.environ.get("CI")))
def test_api_conforms_to_its_schema(case):
    # Same-origin, so that the changing operations are exercised too, not only refused. Not checked:
    # that every "schema-violating" request is refused, since in a query string a one-element array
    # and a string are the same text (`metric=x`, `q=false`); the tests of each resource check the 422s.
    # Nor, for the runs list and its groups, that every schema-valid request is accepted: its sort column and conditions
    # name config keys and metrics of the store's runs, which no schema can list (an unknown one is a 422
    # naming the known ones, checked in test_runs_api).
    excluded = [negative_data_rejection]
    if case.operation.path.endswith(("/runs", "/run-ids", "/run-groups")):
        excluded.append(positive_data_acceptance)
    case.call_and_validate(headers={"Origin": "http://testserver"}, excluded_checks=excluded)
