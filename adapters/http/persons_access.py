"""Who saw personal data in clear: ``GET /api/v1/persons/access-log`` (auditors and admins).

Every clear view (``history?personal_data=true``, the CLI's ``--personal-data``, the audit export) is a row
of the access log (docs/privacy.md); this route reads it. The rule of who may is the service's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from adapters.access_log import as_row
from adapters.http.deps import Caller, runtime_of
from adapters.http.errors import ApiError
from adapters.http.execution import forbidden, json_response
from domain.bounds import moment_problem
from domain.personal_data import OnlyAuditorsAndAdminsSeePersonalData

router = APIRouter(prefix="/api/v1")

CASE_NUMBER = r"^[A-Z]{2,6}-\d{8}-\d{6}$"


def reason_refused(error: Exception) -> ApiError:
    """A clear view asked for without a fit reason: 422 naming ``reason``."""
    message = str(error).removeprefix("reason: ")
    return ApiError(422, "bad_input", f"bad input: reason: {message}", [{"field": "reason", "message": message}])


@router.get("/persons/access-log", tags=["audit"])
def access_log(
    request: Request,
    principal: Caller,
    case_number: Annotated[str | None, Query(pattern=CASE_NUMBER, description="Only views of this case")] = None,
    since: Annotated[
        datetime | None, Query(description="Only views from this moment on (ISO 8601, with offset)")
    ] = None,
) -> Response:
    """Every clear view of personal data, oldest first: who (id, role), when, which case, why, through what."""
    if since is not None and (problem := moment_problem(since)) is not None:
        raise ApiError(422, "bad_input", f"bad input: since: {problem}", [{"field": "since", "message": problem}])
    runtime = runtime_of(request)
    try:
        records = runtime.service.access_records(viewer=principal.actor, case_number=case_number, since=since)
    except OnlyAuditorsAndAdminsSeePersonalData as error:
        raise forbidden(str(error)) from None
    return json_response({"entries": [as_row(record, runtime.settings.tz) for record in records]})
