"""The views over the sink's tables: units and workers with their names, and the daily figures per unit.

Views, not tables: they cost nothing to keep and always agree with the rows under them. ``units`` and
``workers`` read the registry's events in the fact table (``OrgUnitCreated``, ``GridFiguresUpdated``,
``WorkerRegistered``); a schema set without them leaves those views out and ``daily_figures`` without names.
"""

from __future__ import annotations

import duckdb

#: figure → (numerator metric, denominator metrics: the first minus the others), as docs/read-models.md defines them.
RATES: dict[str, tuple[str, tuple[str, ...]]] = {
    "valid_report_rate": ("report_valid", ("report_judged",)),
    "sign_on_time_rate": ("signed_on_time", ("signed",)),
    "on_time_resolution_rate": ("resolved_on_time", ("resolved",)),
    "rework_rate": ("rework", ("verified",)),
    "satisfaction_rate": ("feedback_satisfied", ("feedback",)),
    "community_closure_share": ("closed_in_community", ("closed",)),
    "escalation_rate": ("escalated", ("accepted",)),
    "response_rate": ("signed_on_time", ("dispatched",)),
    "resolution_rate": ("feedback_resolved", ("feedback",)),
    "closure_rate": ("due_closed", ("due", "due_suspended")),
    "on_time_closure_rate": ("due_closed_on_time", ("due", "due_suspended")),
    "urgent_closure_rate": ("urgent_due_closed", ("urgent_due", "urgent_due_suspended")),
    "urgent_on_time_closure_rate": ("urgent_due_closed_on_time", ("urgent_due", "urgent_due_suspended")),
}
METRICS = (
    "patrols", "patrol_seconds", "patrol_metres", "households_visited", "elderly_visits", "places_inspected",
    "reported", "report_valid", "report_judged", "accepted", "rejected", "dispatched", "handled", "signed",
    "signed_on_time", "sign_seconds", "resolved", "resolved_on_time", "resolve_seconds", "verified", "rework",
    "closed", "closed_in_community", "escalated", "bounces", "reopened", "feedback", "feedback_satisfied",
    "feedback_resolved", "due", "due_suspended", "due_closed", "due_closed_on_time", "urgent_due",
    "urgent_due_suspended", "urgent_due_closed", "urgent_due_closed_on_time",
)  # fmt: skip


def _daily_figures(connection: duckdb.DuckDBPyConnection, *, named: bool) -> None:
    """``daily_figures``: one row per unit and day, each metric a column, the rates beside their parts.

    Workers, departments and grids come as counted; communities, streets and the district are sums of their
    grids (rates are summed numerators over summed denominators, never averages of rates).
    """
    sums = ", ".join(f"sum(value) FILTER (WHERE metric = '{m}') AS {m}" for m in METRICS)
    rates = ", ".join(
        f"CASE WHEN coalesce({bottom[0]}, 0) {''.join(f' - coalesce({b}, 0)' for b in bottom[1:])} > 0 "
        f"THEN round(coalesce({top}, 0) / (coalesce({bottom[0]}, 0) {''.join(f' - coalesce({b}, 0)' for b in bottom[1:])}), 4) "  # noqa: E501
        f"END AS {name}"
        for name, (top, bottom) in RATES.items()
    )  # fmt: skip
    names, joins = "", ""
    if named:
        names = "coalesce(u.name, w.name) AS name, u.name_en,"
        joins = ("LEFT JOIN units AS u ON u.kind = wide.kind AND (u.code = wide.subject OR "
                 "(wide.kind = 'district' AND wide.subject = 'all')) "
                 "LEFT JOIN workers AS w ON wide.kind = 'worker' AND w.code = wide.subject")  # fmt: skip
    connection.execute(f"""
        CREATE OR REPLACE VIEW daily_figures AS
        WITH counted AS (
            SELECT kind, subject, day, metric, value FROM daily_counts
            UNION ALL SELECT 'community', community, day, metric, value FROM daily_counts WHERE kind = 'grid'
            UNION ALL SELECT 'street', street, day, metric, value FROM daily_counts WHERE kind = 'grid'
            UNION ALL SELECT 'district', 'all', day, metric, value FROM daily_counts WHERE kind = 'grid'
        ), wide AS (SELECT kind, subject, day, {sums} FROM counted GROUP BY kind, subject, day)
        SELECT {names} wide.*, {rates} FROM wide {joins}
    """)


_UNITS = """
CREATE OR REPLACE VIEW units AS
WITH figures AS (
    SELECT originator_id, arg_max(population, position) AS population, arg_max(households, position) AS households,
           arg_max(elderly, position) AS elderly
    FROM events WHERE event_type = 'gridcase.registry.GridFiguresUpdated' GROUP BY originator_id
)
SELECT e.code, e.kind, e.grid_kind, e.name, e.name_en, e.parent,
       coalesce(f.population, e.population) AS population, coalesce(f.households, e.households) AS households,
       coalesce(f.elderly, e.elderly) AS elderly, e.originator_id AS unit_id
FROM events AS e LEFT JOIN figures AS f USING (originator_id)
WHERE e.event_type = 'gridcase.registry.OrgUnitCreated'
QUALIFY row_number() OVER (PARTITION BY e.kind, e.code ORDER BY e.position DESC) = 1
"""
_WORKERS = """
CREATE OR REPLACE VIEW workers AS
SELECT code, name, kind AS role, department, originator_id AS worker_id
FROM events WHERE event_type = 'gridcase.registry.WorkerRegistered'
QUALIFY row_number() OVER (PARTITION BY code ORDER BY position DESC) = 1
"""


def create(connection: duckdb.DuckDBPyConnection) -> None:
    """Create (or replace) every view; the named ones only where the schemas give the columns they read."""
    try:
        connection.execute(_UNITS)
        connection.execute(_WORKERS)
    except duckdb.BinderException:
        connection.execute("DROP VIEW IF EXISTS units")
        connection.execute("DROP VIEW IF EXISTS workers")
        _daily_figures(connection, named=False)
        return
    _daily_figures(connection, named=True)
