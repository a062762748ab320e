"""The native JSON API: every command of the case, the patrol and the registry; the read models; the audit view.

Each command has its own route, ``POST /api/v1/cases/{case_number}/accept`` and
so on; the body is the command's fields (docs/commands.md) without ``command``,
``actor`` and the number in the path: the actor is the token's.
"""

from __future__ import annotations

import inspect
import typing
from datetime import datetime
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, create_model

from adapters.http.deps import Caller, MaybeCaller, runtime_of
from adapters.http.errors import ApiError
from adapters.http.execution import build, forbidden, idempotent, json_response, run
from adapters.http.persons_access import reason_refused
from domain import commands as c
from domain.base import Role
from domain.bounds import REASON_MAX, moment_problem, period_days
from domain.errors import UnknownReference
from domain.personal_data import OnlyAuditorsAndAdminsSeePersonalData
from projections.intake_queries import intake_figures, possible_duplicates
from projections.performance_queries import performance
from projections.sql import make_engine
from replay.review import BadRules, load_rules, render_csv, render_json, run_review
from service import BadInput

router = APIRouter(prefix="/api/v1")

CASE_NUMBER = r"^[A-Z]{2,6}-\d{8}-\d{6}$"
CaseNumberPath = Annotated[str, Path(pattern=CASE_NUMBER, examples=["SN-20211231-000123"])]
Period = Annotated[str, Query(pattern=r"^\d{4}(-\d{2}(-\d{2})?)?$", description="2021, 2021-06 or 2021-06-01")]
State = Literal["reported", "accepted", "rejected", "merged", "dispatched", "in_progress", "suspended", "resolved",
                "verified", "closed"]  # fmt: skip
Unit = Annotated[str | None, Query(min_length=1, max_length=64, description="Grid, community, street or department")]


def _command_classes() -> list[type[c.Command]]:
    union = typing.get_args(typing.get_args(c.AnyCommand)[0])
    return [cls for cls in union if isinstance(cls, type) and issubclass(cls, c.Command)]


def _body_model(cls: type[c.Command], leave_out: set[str]) -> type[BaseModel]:
    fields: dict[str, Any] = {
        name: (field.annotation, field) for name, field in cls.model_fields.items() if name not in leave_out
    }
    model: type[BaseModel] = create_model(
        f"{cls.__name__}Body",
        __config__=ConfigDict(extra="forbid", frozen=True),
        __doc__=cls.__doc__,
        **fields,
    )
    return model


def _add_command_route(cls: type[c.Command]) -> None:
    name = str(cls.model_fields["command"].default)
    group, _, action = name.partition(".")
    number_field: str | None = None
    status = 200
    if issubclass(cls, c.CaseCommand):
        number_field, path = "case_number", f"/cases/{{case_number}}/{action}"
    elif issubclass(cls, c.PatrolCommand):
        number_field, path = "patrol_number", f"/patrols/{{patrol_number}}/{action}"
    elif name == "case.report":
        path, status = "/cases", 201
    elif name == "patrol.start":
        path, status = "/patrols", 201
    else:
        path = f"/registry/{action}"
    body_model = _body_model(cls, {"command", "actor", *([number_field] if number_field else [])})
    body_required = any(field.is_required() for field in body_model.model_fields.values())

    def endpoint(**values: Any) -> Response:
        request: Request = values["request"]
        principal = values["principal"]
        body: BaseModel | None = values["body"]
        fields: dict[str, Any] = body.model_dump(mode="json", exclude_unset=True) if body is not None else {}
        fields["command"] = name
        if number_field is not None:
            fields[number_field] = values[number_field]
        runtime = runtime_of(request)
        return idempotent(runtime, request, principal, fields, lambda: run(runtime, build(principal, fields)),
                          lambda result: json_response(result, status))  # fmt: skip

    keyword = inspect.Parameter.KEYWORD_ONLY
    parameters = [
        inspect.Parameter("request", keyword, annotation=Request),
        inspect.Parameter("principal", keyword, annotation=Caller),
    ]
    if number_field is not None:
        pattern = CASE_NUMBER
        parameters.append(inspect.Parameter(number_field, keyword, annotation=Annotated[str, Path(pattern=pattern)]))
    parameters.append(
        inspect.Parameter(
            "body",
            keyword,
            annotation=body_model if body_required else body_model | None,
            default=inspect.Parameter.empty if body_required else None,
        )
    )
    endpoint.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    endpoint.__name__ = name.replace(".", "_").replace("-", "_")
    summary = (cls.__doc__ or name).strip().splitlines()[0]
    router.add_api_route(
        path,
        endpoint,
        methods=["POST"],
        status_code=status,
        summary=summary,
        description=f"Command `{name}` (docs/commands.md). Optional header `Idempotency-Key`.",
        tags=[{"case": "case commands", "patrol": "patrol commands"}.get(group, "registry commands")],
        operation_id=endpoint.__name__,
        responses={
            403: {"description": "outside the caller's role"},
            409: {"description": "refused or conflict"},
            422: {"description": "bad input, naming the field"},
        },
    )


for _cls in _command_classes():
    _add_command_route(_cls)


# -- queries ---------------------------------------------------------------------------


@router.get("/whoami", tags=["queries"])
def whoami(principal: Caller) -> dict[str, Any]:
    """The actor and role the token stands for."""
    return {"actor": principal.actor.model_dump(mode="json"), "channel": principal.channel.value}


@router.get("/cases/{case_number}", tags=["queries"])
def case_status(request: Request, case_number: CaseNumberPath, _caller: Caller) -> Response:
    """The case's status row: state, level, handler, deadlines, overdue flag, bounces (no personal data)."""
    runtime = runtime_of(request)
    runtime.wait_fresh()
    row = runtime.read.case(case_number)
    if row is None:
        raise ApiError(404, "not_found", f"unknown case {case_number!r}")
    return json_response(row)


@router.get("/cases/{case_number}/history", tags=["audit"])
def case_history(
    request: Request,
    case_number: CaseNumberPath,
    principal: Caller,
    personal_data: Annotated[
        bool, Query(description="Reporter contact in clear (auditors, admins; with a reason; recorded)")
    ] = False,
    reason: Annotated[
        str | None, Query(max_length=REASON_MAX, description="Why the contact is needed in clear (access log)")
    ] = None,
) -> Response:
    """The audit view: every event of the case, who (id, role) did it, when it happened and was recorded.

    ``personal_data=true`` is a clear view: auditors and admins only (403), with a ``reason`` (422 without);
    recorded in the access log before the answer is sent (``GET /api/v1/persons/access-log``).
    """
    runtime = runtime_of(request)
    try:
        rows = runtime.service.history(case_number, personal_data=personal_data, viewer=principal.actor,
                                       reason=reason, via="http")  # fmt: skip
    except UnknownReference:
        raise ApiError(404, "not_found", f"unknown case {case_number!r}") from None
    except OnlyAuditorsAndAdminsSeePersonalData as error:
        raise forbidden(str(error)) from None
    except BadInput as error:
        raise reason_refused(error) from None
    return json_response({"case_number": case_number, "personal_data": personal_data, "events": rows})


@router.get("/cases/{case_number}/duplicates", tags=["queries"])
def duplicates(request: Request, case_number: CaseNumberPath, _caller: Caller) -> Response:
    """Open cases that may be the same matter: same category and grid, within 48 h and 300 m."""
    runtime = runtime_of(request)
    runtime.wait_fresh()
    if runtime.read.case(case_number) is None:
        raise ApiError(404, "not_found", f"unknown case {case_number!r}")
    with runtime.engine.connect() as connection:
        return json_response(possible_duplicates(connection, case_number))


@router.get("/track/{case_number}", tags=["public"])
def track(
    request: Request,
    case_number: CaseNumberPath,
    code: Annotated[str | None, Query(max_length=32, description="The check code on the citizen's receipt")] = None,
    _caller: MaybeCaller = None,
) -> Response:
    """The citizen's view by case number and check code: no token needed, no personal data, merges followed.

    A wrong or missing check code answers exactly as an unknown number does (404).
    """
    runtime = runtime_of(request)
    try:
        runtime.service.track(case_number, code)
    except UnknownReference:
        raise ApiError(404, "not_found", f"unknown case {case_number!r}") from None
    runtime.wait_fresh()
    found = runtime.read.timeline(case_number)
    if found is None:
        raise ApiError(404, "not_found", f"unknown case {case_number!r}")
    return json_response(found)


@router.get("/queue", tags=["queries"])
def queue(request: Request, _caller: Caller, unit: Unit = None, state: State | None = None) -> Response:
    """Cases of an org unit (or all) in a state (or any)."""
    runtime = runtime_of(request)
    runtime.wait_fresh()
    return json_response(runtime.read.queue(unit, state))


@router.get("/overdue", tags=["queries"])
def overdue(request: Request, _caller: Caller, unit: Unit = None) -> Response:
    """Open cases past their resolve-by on the SLA clock (parked time removed)."""
    runtime = runtime_of(request)
    runtime.wait_fresh()
    return json_response(runtime.read.overdue(unit))


@router.get("/performance", tags=["queries"])
def performance_figures(
    request: Request,
    _caller: Caller,
    period: Period,
    kind: Literal["worker", "department", "grid", "community", "street", "district"],
    subject: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
) -> Response:
    """Figures of a worker, department, grid, community, street or the district for a period.

    Every subject of the kind when no subject is given.
    """
    _check_period(period)
    if kind == "district":
        subject = "all"
    runtime = runtime_of(request)
    runtime.wait_fresh()
    with runtime.engine.connect() as connection:
        return json_response(performance(connection, kind, period, subject))


@router.get("/intake", tags=["queries"])
def intake(request: Request, _caller: Caller, period: Period, by: Literal["channel", "category", "street"]) -> Response:
    """One window, one number: received, accepted, rejected, merged and minutes to acceptance, per group."""
    _check_period(period)
    runtime = runtime_of(request)
    runtime.wait_fresh()
    with runtime.engine.connect() as connection:
        return json_response(intake_figures(connection, by, period))


def _check_period(period: str) -> None:
    try:
        period_days(period)
    except ValueError as error:
        raise ApiError(422, "bad_input", f"bad input: {error}",
                       [{"field": "period", "message": str(error)}]) from None  # fmt: skip


def _moment(text: str | None, name: str) -> datetime | None:
    """An ISO 8601 time with its offset inside the window every moment keeps (domain/bounds.py); 422 otherwise."""
    if text is None:
        return None
    try:
        # Unix seconds are refused: a bare number is a mistake more often than a time.
        moment = None if text.strip().lstrip("+-").isdigit() else datetime.fromisoformat(text)
    except ValueError:
        moment = None
    problem = "is not an ISO 8601 time (e.g. 2021-06-01T00:00:00+08:00)" if moment is None else moment_problem(moment)
    if problem is not None:
        raise ApiError(422, "bad_input", f"bad input: {name}: {text!r} {problem}",
                       [{"field": name, "message": f"{text!r} {problem}"}])  # fmt: skip
    return moment


RULES = FilePath(__file__).resolve().parents[2] / "rules"


@router.get("/reviews/{period}", tags=["reviews"])
def review_report(
    request: Request,
    principal: Caller,
    period: Annotated[str, Path(pattern=r"^\d{4}(-\d{2})?$", description="The year (or month) reviewed")],
    rules: Annotated[
        str | None,
        Query(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="Rule file under rules/, without .toml; default: the year"),
    ] = None,
    as_of_recorded: Annotated[
        str | None,
        Query(max_length=40, description="Exactly what the system knew at this time: ISO 8601 with its offset"),
    ] = None,
    output: Annotated[Literal["json", "csv"], Query(alias="format")] = "json",
) -> Response:
    """The yearly review (auditors and administrators): the same bytes as ``gridcase review``."""
    if principal.role not in {Role.AUDITOR, Role.ADMIN}:
        raise forbidden(f"role {principal.role.value} may not read review reports")
    _check_period(period)
    cut_off = _moment(as_of_recorded, "as_of_recorded")
    name = rules or period[:4]
    path = RULES / f"{name}.toml"
    if not path.is_file():
        raise ApiError(404, "not_found", f"no rule file rules/{name}.toml")
    try:
        loaded = load_rules(path)
    except BadRules as error:
        raise ApiError(422, "bad_input", f"bad input: {error}") from None
    runtime = runtime_of(request)
    store = make_engine(runtime.settings.database_url)
    try:
        result = run_review(
            runtime.reader.read,
            store, period, loaded, runtime.settings.tz, as_of_recorded=cut_off,
        )  # fmt: skip
    finally:
        store.dispose()
    if output == "csv":
        return Response(render_csv(result), media_type="text/csv; charset=utf-8")
    return Response(render_json(result), media_type="application/json")
