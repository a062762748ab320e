"""``gridcase serve`` and ``gridcase token create|revoke|list``.

The web stack is imported only when serving. Every failure here is bad input (exit 2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from adapters.bootstrap import bootstrap
from adapters.cli.common import Exit, JsonOpt, emit, err, fail, load_settings, out
from adapters.logging import guard_standard_logging

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from adapters.settings import Settings

token_app = typer.Typer(help="Bearer tokens of the HTTP API: create, revoke, list.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add ``serve`` and the ``token`` group to the ``gridcase`` program."""
    app.add_typer(token_app, name="token")
    app.command("serve")(serve)


def _engine(settings: Settings) -> Engine:
    from adapters.http.tables import create_tables  # noqa: PLC0415
    from projections.sql import make_engine  # noqa: PLC0415

    engine = make_engine(settings.read_url)
    create_tables(engine)
    return engine


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on")] = 8000,
    projections: Annotated[
        bool, typer.Option("--projections/--no-projections", help="Run the projections in this process")
    ] = True,
) -> None:
    """Serve the HTTP API (Open311 and native) with the projections following the store in-process."""
    import uvicorn  # noqa: PLC0415

    settings = load_settings()
    if settings.sqlite_path is not None and str(settings.sqlite_path) != ":memory:":
        settings.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    app = bootstrap(settings).http_app(follow=projections)
    out.print(
        f"serving the gridcase API on http://{host}:{port} (Open311 at /open311/v2/services.json, native at "
        f"/api/v1, OpenAPI at /openapi.json, docs at /docs); database {settings.database_url}; Ctrl-C stops. "
        "Tokens: gridcase token create --actor ID --role ROLE",
        highlight=False,
        markup=False,
    )
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    guard_standard_logging()  # uvicorn's handlers exist now: their exceptions too go without values
    server.run()


@token_app.command("create")
def token_create(
    actor: Annotated[str, typer.Option(help="Who the token acts as: a worker code, an operator id, …")],
    role: Annotated[str, typer.Option(help="grid_worker, intake_operator, dispatcher, department_handler, …")],
    unit: Annotated[str | None, typer.Option(help="Department code (department handlers)")] = None,
    channel: Annotated[str, typer.Option(help="Intake channel of Open311 requests filed with it")] = "app",
    note: Annotated[str, typer.Option(help="What the token is for")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Issue a bearer token for an actor in a role; the token is shown once and stored only as its sha256."""
    from adapters.http.auth import TOKEN_ROLES, TokenStore  # noqa: PLC0415
    from domain.base import Role  # noqa: PLC0415
    from domain.case import Channel  # noqa: PLC0415

    roles = {r.value: r for r in TOKEN_ROLES}
    if role not in roles:
        fail(Exit.BAD_INPUT, f"bad input: role: {role!r} is not one of {', '.join(roles)}")
    if channel not in {c.value for c in Channel} or channel == Channel.PATROL.value:
        fail(Exit.BAD_INPUT, f"bad input: channel: {channel!r} is not an intake channel")
    if roles[role] is Role.DEPARTMENT_HANDLER and not unit:
        fail(Exit.BAD_INPUT, "bad input: unit: a department handler's token names their department (--unit)")
    settings = load_settings()
    _check_actor(settings, roles[role], actor, unit)
    issued = TokenStore(_engine(settings)).create(actor, roles[role], unit, Channel(channel), note)
    if as_json:
        emit(issued.__dict__)
        return
    out.print(f"token {issued.token_id} for {role} {actor}{f' ({unit})' if unit else ''}: {issued.token}",
              highlight=False, markup=False)  # fmt: skip
    err.print("shown once: only its hash is stored. Revoke with: gridcase token revoke " + issued.token_id,
              highlight=False, markup=False)  # fmt: skip


def _check_actor(settings: Settings, role: object, actor: str, unit: str | None) -> None:
    """A grid worker's token names a registered worker; a department handler's, a department."""
    from domain.base import Role  # noqa: PLC0415

    engine = bootstrap(settings)
    try:
        if role is Role.GRID_WORKER and not engine.service.worker_registered(actor):
            fail(Exit.BAD_INPUT, f"bad input: actor: no worker {actor!r} in the registry")
        if unit is not None and not engine.service.is_department(unit):
            fail(Exit.BAD_INPUT, f"bad input: unit: no department {unit!r} in the registry")
    finally:
        engine.close()


@token_app.command("revoke")
def token_revoke(token_id: Annotated[str, typer.Argument(help="The token's id (from token create / list)")],
                 as_json: JsonOpt = False) -> None:  # fmt: skip
    """Revoke a token: requests with it are refused from now on."""
    from adapters.http.auth import TokenStore  # noqa: PLC0415

    done = TokenStore(_engine(load_settings())).revoke(token_id)
    if not done:
        fail(Exit.BAD_INPUT, f"bad input: token_id: no live token {token_id!r}")
    if as_json:
        emit({"token_id": token_id, "revoked": True})
    else:
        out.print(f"token {token_id} revoked", highlight=False)


@token_app.command("list")
def token_list(as_json: JsonOpt = False) -> None:
    """Every token: id, actor, role, unit, channel, created, revoked (never the secret)."""
    from adapters.http.auth import TokenStore  # noqa: PLC0415

    rows = TokenStore(_engine(load_settings())).list()
    if as_json:
        emit(rows)
        return
    for row in rows:
        state = f"revoked {row['revoked_at']}" if row["revoked_at"] else "live"
        out.print(f"{row['token_id']}  {row['role']:<18} {row['actor_id']:<12} {row['unit'] or '-':<8} {state}",
                  highlight=False, markup=False)  # fmt: skip
