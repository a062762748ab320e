"""Fuzz the HTTP API over real HTTP: schemathesis (positive, negative and stateful) and the hostile catalogue.

For every request: no 5xx, a refused one writes nothing (the store's last position does not move);
in negative mode schemathesis' ``negative_data_rejection`` check wants invalid data refused; a
hostile value that must be refused (tests/hostile.py) is 422 on the native API (Open311: 400) with
the field named. After the run the projections catch up to the store's head, nothing is dead-lettered,
every listing parses (XML and strict JSON) and ``gridcase replay verify`` finds nothing different.
Each failure message is a curl command to paste.
"""

from __future__ import annotations

import copy
import json
import shlex
import time
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import negative_data_rejection, not_a_server_error

from adapters.http.openapi import PATH
from tests.hostile import (
    CODES,
    COUNTS,
    FORM_HUGE,
    MOMENTS,
    ODD_BUT_FINE,
    PERIODS,
    PHASES,
    QUERY_HUGE,
    Context,
    Hostile,
    Mutation,
    every_mutation,
    fuzz_settings,
    gridcase,
    mutations,
    poisoned_text,
    projection_positions,
    report_problems,
)
from tests.support import CATEGORY, GRID

if TYPE_CHECKING:
    from schemathesis import BaseSchema, Case

    from tests.e2e.http.conftest import Api

#: The committed document (a test checks it is the app's own).
DOCUMENT: dict[str, Any] = json.loads(PATH.read_text("utf-8"))
#: Every operation of it.
OPERATIONS = [f"{method.upper()} {path}" for path, methods in DOCUMENT["paths"].items() for method in methods]
CHECKS = [not_a_server_error, negative_data_rejection]


def _without_security(document: dict[str, Any]) -> dict[str, Any]:
    """The document without its bearer scheme: the suite sends the token itself (or none), so schemathesis must
    not generate (or negate) an Authorization header that the suite then replaces."""
    bare = copy.deepcopy(document)
    bare.get("components", {}).pop("securitySchemes", None)
    bare.pop("security", None)
    for methods in bare["paths"].values():
        for operation in methods.values():
            operation.pop("security", None)
    return bare


@pytest.fixture(scope="module")
def api_schema(api: Api) -> BaseSchema:
    """The OpenAPI document as the running server serves it (its bearer scheme left out, see above)."""
    with api.client() as client:
        served = client.get("/openapi.json").json()
    return schemathesis.openapi.from_dict(_without_security(served))


def _curl(method: str, url: str, headers: dict[str, str], body: bytes | None = None) -> str:
    words = ["curl", "-sS", "-X", method, shlex.quote(url)]
    for name, value in headers.items():
        words += ["-H", shlex.quote(f"{name}: {value}")]
    if body is not None:
        shown = body if len(body) < 2_000 else body[:2_000] + b"..."  # a huge body: see the mutation's description
        words += ["--data-binary", shlex.quote(shown.decode("utf-8", "backslashreplace"))]
    return " ".join(words)


def _sent(response: httpx.Response) -> str:
    request = response.request
    headers = {k: v for k, v in request.headers.items() if k.lower() in {"authorization", "content-type"}}
    return _curl(request.method, str(request.url), headers, request.content or None)


# -- schemathesis: each operation, positive and negative data -----------------------------------


def _fuzz_operation(api_schema: BaseSchema, api: Api, operation: str, who: str | None, examples: int) -> None:
    found: Any = api_schema.find_operation_by_label(operation)
    strategy = found.as_strategy(GenerationMode.POSITIVE) | found.as_strategy(GenerationMode.NEGATIVE)
    headers = {"Authorization": f"Bearer {api.tokens[who]}"} if who else {}

    @fuzz_settings(examples)
    @given(case=strategy)
    def check(case: Case) -> None:
        before = api.events()
        response = case.call(base_url=api.url, headers=headers, timeout=60)
        curl = case.as_curl_command(headers=headers)
        assert response.status_code < 500, f"{curl}\n{response.status_code} {response.text[:800]}"
        if response.status_code >= 400:
            assert api.events() == before, f"{curl}\n{response.status_code}, yet the store moved"
        case.validate_response(response, checks=CHECKS, headers=headers)

    check()


@pytest.mark.slow
@pytest.mark.parametrize("operation", OPERATIONS)
def test_no_request_gets_a_server_error(api_schema: BaseSchema, api: Api, operation: str) -> None:
    """As an administrator, so requests get past the token check and into the commands and queries."""
    _fuzz_operation(api_schema, api, operation, "admin", examples=6)


@pytest.mark.slow
@pytest.mark.parametrize("operation", OPERATIONS)
def test_no_request_without_a_token_gets_a_server_error(api_schema: BaseSchema, api: Api, operation: str) -> None:
    _fuzz_operation(api_schema, api, operation, None, examples=2)


@pytest.mark.fuzz_deep
@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("who", ["admin", None])
def test_no_request_gets_a_server_error_deep(api_schema: BaseSchema, api: Api, operation: str, who: str | None) -> None:
    _fuzz_operation(api_schema, api, operation, who, examples=100)


# -- schemathesis: stateful, operations chained by the numbers they return ---------------------

#: How the operations chain (the committed document declares no links: responses have no schema for
#: schemathesis to infer them from), added to this suite's copy of the document only.
KNOWN_CODES = {"category": CATEGORY, "grid": GRID, "worker": "W001"}
CASE_NUMBER = {"case_number": "$response.body#/case_number"}
PATROL_NUMBER = {"patrol_number": "$response.body#/patrol_number"}


def _linked(document: dict[str, Any]) -> dict[str, Any]:
    linked = copy.deepcopy(document)
    paths = linked["paths"]
    case_targets = {m["operationId"]: CASE_NUMBER for p, ms in paths.items() if "{case_number}" in p
                    for m in ms.values()}
    patrol_targets = {m["operationId"]: PATROL_NUMBER for p, ms in paths.items() if "{patrol_number}" in p
                      for m in ms.values()}  # fmt: skip
    sources = [("/api/v1/cases", "201", case_targets), ("/api/v1/patrols", "201", patrol_targets),
               ("/api/v1/patrols/{patrol_number}/hazard", "200", case_targets)]  # fmt: skip
    sources += [(p, "200", case_targets) for p, ms in paths.items() if p.startswith("/api/v1/cases/{case_number}/")
                and "post" in ms]
    for path, status, targets in sources:
        response = paths[path]["post"]["responses"].setdefault(status, {"description": "done"})
        response["links"] = {target: {"operationId": target, "parameters": parameters}
                             for target, parameters in targets.items()}  # fmt: skip
    return linked


@pytest.mark.slow
@pytest.mark.parametrize("who", ["admin", None])
def test_stateful_sequences_get_no_server_error(api: Api, who: str | None) -> None:
    """Report a case or start a patrol, then act on the number it returned, step after step."""
    schema = schemathesis.openapi.from_dict(_linked(_without_security(DOCUMENT)))
    headers = {"Authorization": f"Bearer {api.tokens[who]}"} if who else {}
    base = schema.as_state_machine()

    class Machine(base):  # type: ignore[valid-type, misc]
        def get_call_kwargs(self, case: Case) -> dict[str, Any]:  # noqa: ARG002 - the same for every case
            return {"base_url": api.url, "headers": headers, "timeout": 60}

        def before_call(self, case: Case) -> None:
            # Known codes where the district's are wanted, so sequences get past "unknown grid" to the numbers.
            if isinstance(case.body, dict):
                case.body.update({k: v for k, v in KNOWN_CODES.items() if isinstance(case.body.get(k), str)})
                if isinstance(case.body.get("handler"), dict):
                    case.body["handler"] = {"kind": "worker", "id": "W001"}
            case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"} | headers
            self.position = api.events()

        def validate_response(self, response: Any, case: Case, additional_checks: Any = None,  # noqa: ARG002
                              **kwargs: Any) -> None:
            curl = case.as_curl_command(headers=headers)
            assert response.status_code < 500, f"{curl}\n{response.status_code} {response.text[:800]}"
            if response.status_code >= 400:
                assert api.events() == self.position, f"{curl}\n{response.status_code}, yet the store moved"
            case.validate_response(response, checks=[not_a_server_error], headers=headers,
                                   transport_kwargs=kwargs or None)  # fmt: skip

    Machine.run(settings=settings(max_examples=8, stateful_step_count=8, deadline=None, derandomize=True,
                                  database=None, phases=PHASES, suppress_health_check=list(HealthCheck)))  # fmt: skip


# -- the hostile catalogue, through the native API ---------------------------------------------


@pytest.fixture(scope="module")
def context(api: Api) -> Context:
    """A case in progress (W001's), a reported case and a patrol under way, made over HTTP."""
    def post(who: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        with api.client(who) as client:
            response = client.post(path, json=body)
        assert response.status_code < 300, f"{path}: {response.status_code} {response.text}"
        answer: dict[str, Any] = response.json()
        return answer

    complaint = {"channel": "hotline", "category": CATEGORY, "grid": GRID, "description": "fuzz: 井盖缺失"}
    number = post("operator", "/api/v1/cases", complaint)["case_number"]
    other = post("operator", "/api/v1/cases", complaint)["case_number"]
    post("dispatcher", f"/api/v1/cases/{number}/accept", {})
    post("dispatcher", f"/api/v1/cases/{number}/dispatch", {"handler": {"kind": "worker", "id": "W001"}})
    post("worker", f"/api/v1/cases/{number}/sign", {})
    patrol = post("worker", "/api/v1/patrols", {"worker": "W001", "grid": GRID})["patrol_number"]
    return Context(number, other, patrol)


def native_request(mutation: Mutation) -> tuple[str, dict[str, Any]]:
    """The route and body of a command on the native API: numbers in the path, the actor from the token."""
    fields = mutation.fields()
    name = fields.pop("command")
    fields.pop("actor", None)
    group, _, action = name.partition(".")
    if group == "case" and action != "report":
        return f"/api/v1/cases/{_segment(fields.pop('case_number'))}/{action}", fields
    if group == "patrol" and action != "start":
        return f"/api/v1/patrols/{_segment(fields.pop('patrol_number'))}/{action}", fields
    routes = {"case.report": "/api/v1/cases", "patrol.start": "/api/v1/patrols"}
    return routes.get(name, f"/api/v1/{group}/{action}"), fields


def _segment(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def check_native(api: Api, mutation: Mutation) -> list[str]:
    """Send one mutation as the administrator; each problem with its curl command."""
    if mutation.spec.path[0] == "actor":  # the token is the actor
        return []
    path, body = native_request(mutation)
    content = json.dumps(body, ensure_ascii=True, allow_nan=True).encode()
    before = api.events()
    with api.client("admin") as client:
        try:
            response = client.post(path, content=content, headers={"Content-Type": "application/json"})
        except httpx.InvalidURL:  # a number too long for any URL (httpx: 64 KiB) never reaches the server
            return []
    after = api.events()
    problem = None
    names = mutation.names
    if response.status_code >= 500:
        problem = f"{response.status_code}"
    elif response.status_code >= 400 and after != before:
        problem = f"{response.status_code}, yet the store moved from {before} to {after}"
    elif mutation.must_refuse and response.status_code == 404 and names in {"case_number", "patrol_number"}:
        pass  # a hostile number is in the path: no such case (or, with a "/", no such route) is the right answer
    elif mutation.must_refuse and response.status_code != 422:
        problem = f"{response.status_code} (must be 422)"
    elif response.status_code == 422 and names not in response.text and names not in path:
        problem = f"422 without naming {names!r}"
    if problem is None:
        return []
    return [f"{mutation.describe()}: {problem}\n  $ {_sent(response)}\n  {response.text[:600]}"]


def test_hostile_commands_over_the_native_api(api: Api, context: Context) -> None:
    """Commands fine but for one hostile value, drawn by hypothesis from every field of every command."""
    problems: list[str] = []

    @fuzz_settings(examples=150)
    @given(mutation=mutations(context))
    def check(mutation: Mutation) -> None:
        problems.extend(check_native(api, mutation))

    check()
    assert not problems, report_problems(problems)


@pytest.mark.fuzz_deep
def test_every_hostile_command_over_the_native_api(api: Api, context: Context) -> None:
    """The whole catalogue: every field of every command with every hostile value."""
    problems = [problem for mutation in every_mutation(context, deep=True) for problem in check_native(api, mutation)]
    assert not problems, report_problems(problems)


# -- Open311 intake: the form fields ----------------------------------------------------------

OPEN311_FORM = DOCUMENT["components"]["schemas"]["Body_create_request_open311_v2_requests__response_format__post"]
GOOD_FORM = {"service_code": CATEGORY, "description": "fuzz: 井盖缺失", "attribute[grid]": GRID}


def _form_values() -> list[tuple[str, Hostile]]:
    values = []
    for name, schema in OPEN311_FORM["properties"].items():
        limit = max((b.get("maxLength", 0) for b in schema.get("anyOf", [schema])), default=0)
        values += [
            (name, Hostile("control \\x1b", "fu\x1bzz", must_refuse=True)),
            (name, Hostile("control \\x0c", "fu\x0czz", must_refuse=True)),
            (name, Hostile("NUL", "fu\x00zz", must_refuse=True)),
            (name, Hostile(f"{FORM_HUGE:,} characters", "x" * FORM_HUGE, must_refuse=True)),
            (name, Hostile("RTL and emoji", f"fuzz {ODD_BUT_FINE[1]}{ODD_BUT_FINE[0]}", must_refuse=False)),
        ]
        if limit:
            values.append((name, Hostile(f"{limit + 1} characters", "x" * (limit + 1), must_refuse=True)))
        if any(b.get("type") == "number" for b in schema.get("anyOf", [schema])):
            values += [(name, Hostile(v, v, must_refuse=True)) for v in ("nan", "inf", "1e308")]
    return values


@pytest.mark.parametrize(("field", "hostile"), _form_values(), ids=lambda v: v if isinstance(v, str) else v.label)
def test_hostile_open311_form_fields(api: Api, field: str, hostile: Hostile) -> None:
    form = {**GOOD_FORM, field: hostile.value}
    if field in {"lat", "long"}:
        form |= {"lat": "36.06", "long": "120.38", field: hostile.value}
    before = api.events()
    with api.client("operator") as client:
        response = client.post("/open311/v2/requests.json", content=urlencode(form).encode(),
                               headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    after = api.events()
    how = f"{field} = {hostile.label}\n  $ {_sent(response)}\n  {response.status_code} {response.text[:600]}"
    assert response.status_code < 500, how
    if response.status_code >= 400:
        assert after == before, f"refused, yet the store moved from {before} to {after}: {how}"
    if hostile.must_refuse and field == "api_key":  # a credential: an unknown one is 401, a malformed one 400
        assert response.status_code in {400, 401}, how
    elif hostile.must_refuse:
        assert response.status_code == 400, how
        assert field.split("[", maxsplit=1)[0] in response.text, f"refused without naming {field!r}: {how}"


# -- query parameters -------------------------------------------------------------------------

ENUMS = (
    Hostile("nope", "nope", must_refuse=True),
    Hostile("NUL", "closed\x00", must_refuse=True),
    Hostile("escape sequence", "\x1b[2J", must_refuse=True),
    Hostile(f"{QUERY_HUGE:,} characters", "x" * QUERY_HUGE, must_refuse=True),
)


def _query_values() -> list[tuple[str, str, Hostile]]:
    """(path, parameter, value) for each query and path parameter of each GET operation but the format."""
    found = []
    for path, methods in DOCUMENT["paths"].items():
        operation = methods.get("get")
        if operation is None:
            continue
        for parameter in operation.get("parameters", []):
            name = parameter["name"]
            if name == "response_format":
                continue
            schema = parameter.get("schema", {})
            branches = schema.get("anyOf", [schema])
            kinds = {b.get("type") for b in branches} | {b.get("format") for b in branches}
            if "period" in name:
                values = PERIODS
            elif "date-time" in kinds or name.endswith(("_date", "as_of_recorded")):
                values = MOMENTS
            elif "integer" in kinds:
                values = COUNTS
            elif "boolean" in kinds:
                values = (Hostile("maybe", "maybe", must_refuse=True), Hostile("NUL", "true\x00", must_refuse=True))
            elif any("enum" in b for b in branches):
                values = ENUMS
            else:
                values = CODES
            found += [(f"GET {path}", name, value) for value in values]
    return found


def _url(path: str, parameter: str, value: str) -> str:
    params: dict[str, str] = {}
    filled = path.removeprefix("GET ").replace("{response_format}", "json")
    for name in ("case_number", "service_request_id", "period", "service_code"):
        placeholder = "{" + name + "}"
        if placeholder in filled:
            given_value = value if name == parameter else {"period": "2021", "service_code": CATEGORY}.get(
                name, "SN-20210601-000001")
            filled = filled.replace(placeholder, quote(given_value.encode("utf-8", "surrogatepass"), safe=""))
    if parameter not in path:
        params[parameter] = value
    if "/reviews/" in filled:
        params.setdefault("rules", "2021")
    if parameter not in path:
        if filled.endswith("/performance"):
            params.setdefault("kind", "district")
            params.setdefault("period", "2021")
        if filled.endswith("/intake"):
            params.setdefault("by", "channel")
            params.setdefault("period", "2021")
    query = "&".join(f"{quote(k)}={quote(v.encode('utf-8', 'surrogatepass'), safe='')}" for k, v in params.items())
    return filled + (f"?{query}" if query else "")


QUERY_VALUES = _query_values()


@pytest.mark.parametrize(("path", "parameter", "hostile"), QUERY_VALUES,
                         ids=[f"{p} {n}={h.label}" for p, n, h in QUERY_VALUES])  # fmt: skip
def test_hostile_query_parameters(api: Api, path: str, parameter: str, hostile: Hostile) -> None:
    url = _url(path, parameter, hostile.value)
    with api.client("admin") as client:
        response = client.get(url)
    how = f"{parameter} = {hostile.label}\n  $ {_sent(response)}\n  {response.status_code} {response.text[:600]}"
    assert response.status_code < 500, how
    if hostile.must_refuse:
        wanted = 400 if path.startswith("GET /open311/") else 422
        assert response.status_code == wanted, how
        assert parameter in response.text, f"refused without naming {parameter!r}: {how}"


@pytest.mark.fuzz_deep
def test_generated_texts_in_a_note_over_http(api: Api, context: Context) -> None:
    problems: list[str] = []
    spec = next(s for s in every_mutation(context) if s.spec.command == "case.note" and s.spec.name == "note").spec

    @fuzz_settings(examples=500)
    @given(hostile=st.one_of(poisoned_text()))
    def check(hostile: Hostile) -> None:
        problems.extend(check_native(api, Mutation(spec, hostile, context)))

    check()
    assert not problems, report_problems(problems)


# -- and after all that --------------------------------------------------------------------------


def _strict_json(text: str) -> Any:
    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_listings_parse_and_read_models_settle_after_the_fuzzing(api: Api) -> None:
    """Run last in this module: every listing still parses, the projections reach the head, verify is clean."""
    problems = []
    with api.client() as public:
        for path in ("/open311/v2/requests.xml", "/open311/v2/servicerequestupdates.xml"):
            response = public.get(path, params={"page_size": 100})
            try:
                ET.fromstring(response.content)
            except ET.ParseError as error:
                problems.append(f"{path} does not parse as XML ({error}): $ curl -sS '{api.url}{path}?page_size=100'")
        for path in ("/open311/v2/requests.json", "/open311/v2/servicerequestupdates.json"):
            response = public.get(path, params={"page_size": 100})
            try:
                _strict_json(response.text)
            except ValueError as error:
                problems.append(f"{path} is not strict JSON ({error}): $ curl -sS '{api.url}{path}?page_size=100'")
    url = api.runtime.settings.database_url
    deadline = time.monotonic() + 30
    while True:
        head = api.events()
        behind = {name: at for name, at in projection_positions(url).items() if at < head}
        if not behind or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if behind:
        problems.append(f"projections behind the store's head {head} 30 s after the fuzzing: {behind} (stuck)")
    with api.client("admin") as client:
        letters = client.get("/api/v1/deadletters")
    if letters.status_code != 200 or letters.json():
        problems.append(f"dead letters: $ curl -sS -H 'Authorization: Bearer …' {api.url}/api/v1/deadletters\n"
                        f"  {letters.status_code} {letters.text[:1500]}")  # fmt: skip
    verify = gridcase(url, "replay", "verify", timeout=180)
    if verify.code != 0 or "Traceback" in verify.stderr:
        problems.append(f"replay verify while serving:\n{verify.show()}")
    assert not problems, report_problems(problems)
