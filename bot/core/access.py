"""Who may do what, where: staff roles, their permissions, and the one function that decides.

The rules live here and nowhere else: `PERMISSIONS` says what each role may do,
`CONTACT_DATA_ROLES` who sees residents' contact data unmasked and `SPECIAL_GROUP_ROLES`
who sees the special-group tags (独居老人, 残疾人...). Every interface asks `decide`;
`bot.cases.access.authorize` asks it and writes the audit row.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Collection


class Role(str, enum.Enum):
    AGENT = "agent"
    TECHNICIAN = "technician"
    SUPERVISOR = "supervisor"
    PROJECT_HEAD = "project_head"
    COMPANY_CS = "company_cs"
    MANAGER = "manager"
    ADMIN = "admin"


ROLE_LABELS: dict[Role, str] = {
    Role.AGENT: "客服",
    Role.TECHNICIAN: "维修",
    Role.SUPERVISOR: "主管",
    Role.PROJECT_HEAD: "项目负责人",
    Role.COMPANY_CS: "公司客服部",
    Role.MANAGER: "经理",
    Role.ADMIN: "系统管理员",
}


class Permission(str, enum.Enum):
    VIEW_CASE = "view_case"
    ACT_ON_CASE = "act_on_case"  # claim, reply, resolve
    CONFIRM_PHONE = "confirm_phone"
    VIEW_ALERTS = "view_alerts"
    ACK_ALERT = "ack_alert"
    VIEW_JOBS = "view_jobs"
    RETRY_JOB = "retry_job"
    READ_AUDIT = "read_audit"
    MANAGE_STAFF = "manage_staff"
    VIEW_REPORTS = "view_reports"  # KPIs, the quarterly complaint analysis, survey results, exports
    SEND_NOTICES = "send_notices"  # notices to residents, the annual survey campaign


# In a principal's projects: every project of the company.
ALL_PROJECTS = "*"

_AGENT = frozenset({Permission.VIEW_CASE, Permission.ACT_ON_CASE, Permission.VIEW_ALERTS, Permission.ACK_ALERT})
_SUPERVISOR = _AGENT | {Permission.CONFIRM_PHONE, Permission.VIEW_JOBS, Permission.RETRY_JOB, Permission.SEND_NOTICES}

PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.AGENT: _AGENT,
    Role.TECHNICIAN: frozenset({Permission.VIEW_CASE, Permission.ACT_ON_CASE}),
    Role.SUPERVISOR: _SUPERVISOR,
    Role.PROJECT_HEAD: _SUPERVISOR | {Permission.READ_AUDIT, Permission.VIEW_REPORTS},
    Role.COMPANY_CS: _SUPERVISOR | {Permission.VIEW_REPORTS},
    # Oversight: reads cases, alerts, jobs, reports and the audit trail, acts on nothing.
    Role.MANAGER: frozenset({Permission.VIEW_CASE, Permission.VIEW_ALERTS, Permission.VIEW_JOBS,
                             Permission.READ_AUDIT, Permission.VIEW_REPORTS}),
    Role.ADMIN: frozenset(Permission),
}

# Residents' names and phone numbers in clear: the front line (agent, technician) works with masked data.
CONTACT_DATA_ROLES: frozenset[Role] = frozenset({Role.SUPERVISOR, Role.PROJECT_HEAD, Role.COMPANY_CS, Role.MANAGER,
                                                 Role.ADMIN})
# Special-group tags: for the people who care for those residents, not for oversight or repairs.
SPECIAL_GROUP_ROLES: frozenset[Role] = frozenset({Role.AGENT, Role.SUPERVISOR, Role.PROJECT_HEAD, Role.COMPANY_CS})


@dataclass(frozen=True)
class Principal:
    """A staff member as the rules see them: roles and the projects they serve."""

    staff_id: int | None
    name: str
    roles: frozenset[Role]
    projects: frozenset[str]  # project codes; ALL_PROJECTS for every project

    @property
    def actor_id(self) -> str:
        return f"staff:{self.staff_id}"

    def serves(self, project: str) -> bool:
        return ALL_PROJECTS in self.projects or project in self.projects


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str  # English, short: for logs and API errors, never personal data
    contact_data: bool  # residents' personal data may be shown unmasked
    special_groups: bool  # special-group tags may be shown


def _refused(reason: str) -> Decision:
    return Decision(allowed=False, reason=reason, contact_data=False, special_groups=False)


def _role_list(roles: Collection[Role]) -> str:
    names = sorted(role.value for role in roles)
    return ("roles " if len(names) > 1 else "role ") + ", ".join(names)


def decide(principal: Principal, permission: Permission, project: str | None) -> Decision:
    """Whether `principal` may use `permission` in `project`.

    `project` None is a company-wide request (a list, a search): allowed when a role holds the
    permission; the caller then shows only the rows of `visible_projects`."""
    if not principal.roles:
        return _refused("no roles (unassigned or disabled)")
    if project is not None and not principal.serves(project):
        return _refused(f"not a staff member of project {project}")
    holders = {role for role in principal.roles if permission in PERMISSIONS.get(role, frozenset())}
    if not holders:
        return _refused(f"{_role_list(principal.roles)} may not {permission.value}")
    return Decision(
        allowed=True,
        reason=f"{_role_list(holders)} may {permission.value}",
        contact_data=bool(principal.roles & CONTACT_DATA_ROLES),
        special_groups=bool(principal.roles & SPECIAL_GROUP_ROLES),
    )


def visible_projects(principal: Principal, all_codes: Collection[str]) -> frozenset[str]:
    """The projects of `all_codes` whose rows the principal may see; none without a role."""
    if not principal.roles:
        return frozenset()
    if ALL_PROJECTS in principal.projects:
        return frozenset(all_codes)
    return frozenset(code for code in all_codes if code in principal.projects)
