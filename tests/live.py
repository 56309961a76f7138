"""Helpers for tests that talk to the real servers over loopback."""
from __future__ import annotations

import json
import socket
import urllib.request
from dataclasses import dataclass, field

from sqlalchemy import select

from bot.app.stack import Service
from bot.db.models import Resident, Ticket
from bot.db.store import TicketStore

# Every reply the e2e tests receive from the assistant, for the length report that
# tests/e2e/conftest.py writes at the end of the session (results/reply-lengths.md).
REPLIES: list[str] = []


def record_replies(texts: list[str]) -> list[str]:
    REPLIES.extend(t for t in texts if t)
    return texts


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveStack:
    rasa_port: int
    store: TicketStore
    actions: Service
    action_port: int = 0
    # What Rasa was started with (`--auth-token`); its HTTP API refuses calls without it.
    rasa_token: str = field(default="", repr=False)
    rasa: Service | None = None

    @property
    def rasa_url(self) -> str:
        return f"http://127.0.0.1:{self.rasa_port}"

    @property
    def actions_url(self) -> str:
        return f"http://127.0.0.1:{self.action_port}"

    def say(self, sender: str, text: str) -> list[str]:
        body = json.dumps({"sender": sender, "message": text}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.rasa_port}/webhooks/rest/webhook", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            assert response.status == 200
            return record_replies([m.get("text", "") for m in json.loads(response.read())])

    def tickets_of(self, sender: str) -> list[Ticket]:
        with self.store.transaction() as s:
            rows = s.execute(select(Ticket).join(Resident).where(Resident.openid == sender)
                             .order_by(Ticket.id)).scalars().all()
            for row in rows:
                list(row.events)  # load while the session is open
            return list(rows)


def staff_member(store: TicketStore, employee_number: str, name: str, *, roles: tuple[str, ...] = ("agent",),
                 projects: tuple[str, ...] = ("*",), token: str | None = None,
                 telegram_user_id: int | None = None) -> None:
    """A staff member in the store (once per store: the live stack outlives a test), with this
    API token registered for them."""
    from bot.cases.staff_directory import add_staff, find_staff, hash_token, issue_token
    from bot.db.models import StaffToken

    with store.transaction() as session:
        member = find_staff(session, employee_number)
        if member is None:
            member = add_staff(session, name=name, employee_number=employee_number, roles=roles, projects=projects,
                               known_projects=projects, telegram_user_id=telegram_user_id)
        if token and session.scalar(select(StaffToken.id).where(StaffToken.token_hash == hash_token(token))) is None:
            issue_token(session, member, token=token)
