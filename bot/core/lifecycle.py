"""The ticket state machine: which status may follow which.

    new ──► accepted ──► in_progress ──► resolved ──► closed
     │         │  └───────────────────────▲   │
     └─────────┴──► cancelled              │   ▼
                         reopened ─────────┴── (resolved → reopened → in_progress)

Residents may cancel only what nobody has started (new, accepted). An open case may also go
straight to closed when staff find it outside the company's responsibility (explained to the
resident; bot.cases.case_work), so it gets no satisfaction callback.
"""
from __future__ import annotations

from bot.core.kinds import TicketStatus as S

TRANSITIONS: dict[S, frozenset[S]] = {
    S.NEW: frozenset({S.ACCEPTED, S.IN_PROGRESS, S.CANCELLED, S.CLOSED}),
    S.ACCEPTED: frozenset({S.IN_PROGRESS, S.RESOLVED, S.CANCELLED, S.CLOSED}),
    S.IN_PROGRESS: frozenset({S.RESOLVED, S.CLOSED}),
    S.RESOLVED: frozenset({S.CLOSED, S.REOPENED}),
    S.REOPENED: frozenset({S.IN_PROGRESS, S.RESOLVED, S.CLOSED}),
    S.CLOSED: frozenset(),
    S.CANCELLED: frozenset(),
}

OPEN_STATUSES: frozenset[S] = frozenset({S.NEW, S.ACCEPTED, S.IN_PROGRESS, S.REOPENED})
OPEN_STATUS_VALUES: tuple[str, ...] = tuple(sorted(s.value for s in OPEN_STATUSES))  # for SQL IN (...)
# Nobody has started work yet: residents may cancel these, and a waiting request is reused.
NOT_STARTED: frozenset[S] = frozenset({S.NEW, S.ACCEPTED})
RESIDENT_CANCELLABLE: frozenset[S] = NOT_STARTED

STATUS_LABELS_ZH: dict[S, str] = {
    S.NEW: "已受理，待派单",
    S.ACCEPTED: "已派单",
    S.IN_PROGRESS: "处理中",
    S.RESOLVED: "已处理，待回访",
    S.CLOSED: "已办结",
    S.REOPENED: "重新处理中",
    S.CANCELLED: "已撤销",
}


class IllegalTransition(ValueError):
    """A status change the state machine does not allow."""

    def __init__(self, number: str, current: S, target: S) -> None:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[current])) or "none (final state)"
        super().__init__(
            f"ticket {number}: cannot go from '{current.value}' to '{target.value}'; allowed: {allowed}"
        )
        self.current = current
        self.target = target


def check_transition(number: str, current: S, target: S) -> None:
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(number, current, target)
