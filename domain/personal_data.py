"""Who may see personal data in clear, and what a clear view must carry: the rule, written once.

The CLI (``case history``, ``audit``), the HTTP API and any other entry point ask the service for a clear
view; the service asks this module, so they all refuse alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from domain.base import Role
from domain.bounds import REASON_MAX, text_problem
from domain.errors import DomainError

if TYPE_CHECKING:
    from domain.base import ActorRef

#: Roles that may see reporters' personal data in clear (and read the log of who did).
PERSONAL_DATA_READERS = frozenset({Role.AUDITOR, Role.ADMIN})


class OnlyAuditorsAndAdminsSeePersonalData(DomainError):
    """A clear view of personal data, or a look at the access log, by a role without the right to it."""

    rule = "OnlyAuditorsAndAdminsSeePersonalData"

    def __init__(self, viewer: ActorRef | None, what: str) -> None:
        self.viewer = viewer
        who = "nobody named" if viewer is None else f"role {viewer.role.value} ({viewer.id})"
        super().__init__(f"{who} may not {what}: auditors and admins only")


def check_may_see_personal_data(viewer: ActorRef | None, what: str = "see personal data in clear") -> None:
    """Refuse unless the viewer's role may see personal data in clear."""
    if viewer is None or viewer.role not in PERSONAL_DATA_READERS:
        raise OnlyAuditorsAndAdminsSeePersonalData(viewer, what)


def reason_problem(reason: str | None) -> str | None:
    """What is wrong with the reason given for a clear view, or None: one line of text, not blank, bounded."""
    if reason is None or not reason.strip():
        return "give the reason for seeing personal data in clear"
    if len(reason) > REASON_MAX:
        return f"is {len(reason):,} characters long; at most {REASON_MAX:,}"
    return text_problem(reason, multiline=False)


def public_place(location_public: bool | None, address: str | None, lat: float | None,
                 lon: float | None) -> tuple[str | None, float | None, float | None]:  # fmt: skip
    """Where a public view may say a case is: its address and position, or nothing finer than its grid.

    ``location_public`` is the category's flag (:class:`domain.registry.Category`); None, a category the
    catalogue does not know, is treated as not public: a location is shown only when the catalogue says so.
    """
    if location_public is not True:
        return None, None, None
    return address, lat, lon
