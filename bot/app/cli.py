"""Command line: python -m bot {serve,stack,worker,survey,migrate,train,residents,projects,staff,audit}."""
from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING

from bot.settings import Settings

if TYPE_CHECKING:
    from datetime import datetime

    from bot.core.rules import ProjectRules
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description="物业客服助手 service commands")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gateway: public WeChat listener and staff API listener")
    serve.add_argument("--host", help="public (WeChat) listener; default GATEWAY_HOST")
    serve.add_argument("--port", type=int, help="default GATEWAY_PORT")
    serve.add_argument("--staff-host", help="staff API listener, internal only; default STAFF_HOST")
    serve.add_argument("--staff-port", type=int, help="default STAFF_PORT")
    sub.add_parser("stack", help="migrate, train if needed, start actions + Rasa + gateway")
    migrate_cmd = sub.add_parser("migrate", help="upgrade the ticket store schema to the latest revision")
    migrate_cmd.add_argument("--check", action="store_true",
                             help="change nothing: exit 0 when the store answers and is up to date, else 1")
    sub.add_parser("train", help="train the Rasa model unless an identical one is cached")
    residents = sub.add_parser("residents", help="the household roster (一户一档)")
    residents_sub = residents.add_subparsers(dest="residents_command", required=True)
    roster = residents_sub.add_parser("import", help="import a UTF-8 CSV: room,name,phone[,project,tags,...]")
    roster.add_argument("file")
    roster.add_argument("--project", help="project of rows that name none; default: the default project")
    projects = sub.add_parser("projects", help="the project registry (company defaults + one file per project)")
    projects.add_argument("projects_command", choices=("list", "check"),
                          help="list: code, name, time zone, staff groups; check: load every file, exit 1 on an error")
    for verb, what in (("export", "write everything held about a resident as JSON"),
                       ("erase", "erase a resident's personal data everywhere (keeps case numbers, kinds, times)")):
        rights = residents_sub.add_parser(verb, help=what)
        rights.add_argument("who", help="the resident's openid, or a room (every resident of that room)")
        rights.add_argument("--by", required=True, help="the staff member carrying out the request (audited)")
        rights.add_argument("--reason", required=True, help="why, e.g. the resident's request of 2026-12-01 (audited)")
        if verb == "export":
            rights.add_argument("--out", help="file to write (created readable by its owner only); default stdout")
        else:
            rights.add_argument("--yes", action="store_true", help="really erase (it cannot be undone)")
    from bot.app import staff_cli
    staff_cli.add_parsers(sub)  # staff add|list|disable|token, audit
    sub.add_parser("staffbot", help="run the Telegram staff bot (needs TELEGRAM_BOT_TOKEN and STAFF_CHAT_ID)")
    worker = sub.add_parser("worker", help="run scheduled follow-ups (callbacks, updates, SLA checks)")
    worker.add_argument("--once", action="store_true", help="run what is due now, then exit")
    worker.add_argument("--now", help="ISO time to treat as now (naive = project local time)")
    survey = sub.add_parser("survey", help="the annual satisfaction survey")
    survey_sub = survey.add_subparsers(dest="survey_command", required=True)
    campaign = survey_sub.add_parser("campaign", help="send the survey to every bound household (resumable)")
    campaign.add_argument("--name", required=True, help="campaign name, e.g. 2026")
    campaign.add_argument("--per-minute", type=int, default=30, help="rate limit (messages per minute)")
    campaign.add_argument("--project", action="append", help="project code (repeatable); default: every project")
    summary = survey_sub.add_parser("summary", help="results of a campaign")
    summary.add_argument("--name", required=True)
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    if args.command == "serve":
        import asyncio

        from bot.app.listeners import Listener, serve_gateway
        public = Listener("public (WeChat)", args.host or settings.gateway_host, args.port or settings.gateway_port)
        staff = Listener("staff API", args.staff_host or settings.staff_host, args.staff_port or settings.staff_port)
        if refused_in_production(settings, "serve"):
            return 2
        if settings.is_development:
            from bot.channels.wechat.simulator import SimulatorRefused, check_allowed
            try:
                for listener in (public, staff):  # development tokens: loopback only, both listeners
                    check_allowed(settings, listener.host)
            except SimulatorRefused as exc:
                print(f"refusing to start: {exc}", file=sys.stderr)
                return 2
        asyncio.run(serve_gateway(settings, public, staff))
        return 0
    if args.command == "projects":
        return projects_command(args, settings)
    if args.command in ("staff", "audit"):
        return staff_command(args, settings)
    if args.command == "stack":
        from bot.app.stack import run_stack
        return run_stack(settings)
    if args.command == "migrate":
        from bot.app import migrate
        if args.check:
            try:
                return 0 if migrate.is_current(settings.database_url) else 1
            except Exception as exc:  # noqa: BLE001 - unreachable store: unhealthy, said briefly
                print(f"store unavailable: {exc.__class__.__name__}", file=sys.stderr)
                return 1
        migrate.upgrade(settings.database_url, project=migration_project(settings))
        return 0
    if args.command == "residents" and args.residents_command in ("export", "erase"):
        return resident_rights_command(args, settings)
    if args.command == "residents":
        from pathlib import Path

        from bot.app.services import company_of
        from bot.cases.residents import RosterError, import_roster
        from bot.db.store import TicketStore
        company = company_of(settings)
        if args.project and not company.knows(args.project):
            print(f"roster not imported: unknown project {args.project!r}", file=sys.stderr)
            return 1
        store = TicketStore(settings.database_url)
        try:
            with store.transaction() as session:
                created, updated = import_roster(session, Path(args.file), projects=company.codes,
                                                 default_project=args.project or company.default_code)
        except (RosterError, OSError) as exc:
            print(f"roster not imported: {exc}", file=sys.stderr)
            return 1
        finally:
            store.dispose()
        print(f"roster imported: {created} new household contact(s), {updated} updated")
        return 0
    if args.command == "worker":
        import asyncio

        from bot.app.services import company_of
        from bot.app.services import run_worker as run
        if refused_in_production(settings, "worker"):
            return 2
        company = company_of(settings)
        try:
            now = parse_now(args.now, company.default) if args.now else None
        except ValueError as exc:
            print(f"bad --now: {exc}", file=sys.stderr)
            return 2
        counts = asyncio.run(run(settings, company, once=args.once, now=now))
        if args.once:
            print("jobs: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none due"))
        return 0
    if args.command == "staffbot":
        from bot.app.services import company_of
        from bot.channels.telegram.app import run as run_staffbot
        return run_staffbot(settings, company_of(settings))
    if args.command == "survey":
        return survey_command(args, settings)
    if args.command == "train":
        from bot.app.model_cache import ensure_model
        print(ensure_model())
        return 0
    return 2


def resident_rights_command(args: argparse.Namespace, settings: Settings) -> int:
    """`residents export|erase`: a resident's rights over their data, audited."""
    import asyncio
    import getpass
    import json
    import os

    from bot.app.services import company_of, rights_ports
    from bot.cases.resident_rights import Request, RightsError, erase_resident, export_resident
    from bot.core.clock import utcnow
    from bot.db.store import TicketStore
    if args.residents_command == "erase" and not args.yes:
        print("erasure cannot be undone: add --yes to carry it out", file=sys.stderr)
        return 2
    request = Request(requested_by=args.by.strip()[:64], os_user=getpass.getuser()[:64], reason=args.reason.strip(),
                      now=utcnow())
    if not request.requested_by or not request.reason:
        print("--by and --reason must not be empty (they go to the audit table)", file=sys.stderr)
        return 2
    store = TicketStore(settings.database_url)

    async def carry_out() -> object:
        async with rights_ports(store, settings, company_of(settings)) as (channel, memory):
            if args.residents_command == "export":
                return await export_resident(store, channel, memory, args.who, request)
            return await erase_resident(store, channel, memory, args.who, request)

    try:
        result = asyncio.run(carry_out())
    except RightsError as exc:
        print(f"not done: {exc}", file=sys.stderr)
        return 1
    finally:
        store.dispose()
    if args.residents_command == "erase":
        print("erased: " + ", ".join(f"{count} {what}" for what, count in result.items()))  # type: ignore[attr-defined]
        return 0
    text = json.dumps(result, ensure_ascii=False, indent=2, default=str)
    if args.out:
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # personal data: owner only
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
        print(f"exported to {args.out}", file=sys.stderr)
    else:
        print(text)
    return 0


def refused_in_production(settings: Settings, process: str) -> bool:
    problems = settings.production_problems(process)
    if problems:
        print(f"refusing to start {process} (production; WUYE_ENV=development only for make run): "
              + "; ".join(problems), file=sys.stderr)
    return bool(problems)


def parse_now(value: str, rules: "ProjectRules") -> "datetime":
    """An ISO time as naive UTC; without an offset it is the project's local time."""
    from datetime import datetime

    from bot.core.clock import to_utc_naive
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=rules.timezone)
    return to_utc_naive(moment)


def staff_command(args: argparse.Namespace, settings: Settings) -> int:
    """`staff …` and `audit …`: the staff directory and the audit trail (bot.app.staff_cli)."""
    from bot.app import staff_cli
    from bot.app.services import company_of
    from bot.db.store import TicketStore
    company = company_of(settings)
    store = TicketStore(settings.database_url)
    try:
        if args.command == "audit":
            return staff_cli.run_audit(args, store, company.codes, company.default.timezone)
        return staff_cli.run_staff(args, store, company.codes)
    finally:
        store.dispose()


def migration_project(settings: Settings) -> str:
    """Where rows written before projects existed land: the registry's default project."""
    from bot.app.services import company_of
    return company_of(settings).default_code


def projects_command(args: argparse.Namespace, settings: Settings) -> int:
    """`projects list|check`: what the registry holds, or whether every file loads."""
    from bot.core.company import load_company
    from bot.core.rules_schema import RulesFileError
    try:
        company = load_company(settings.project_config, settings.projects_dir)
    except (RulesFileError, OSError) as exc:
        print(f"project files refused: {exc}", file=sys.stderr)
        return 1
    if args.projects_command == "check":
        print(f"{len(company.codes)} project(s) loaded from {len(company.files)} file(s): {', '.join(company.codes)}")
        return 0
    for code, rules in company.projects.items():
        default = " (default)" if code == company.default_code else ""
        print(f"{code}{default}\t{rules.name}\t{rules.timezone.key}\tstaff chat {rules.staff_chat_id or '-'}"
              f"\thead chat {rules.head_chat_id or '-'}")
    return 0


def survey_command(args: argparse.Namespace, settings: Settings) -> int:
    from bot.app.services import company_of
    from bot.cases import surveys
    from bot.core.clock import utcnow
    from bot.core.company import UnknownProject
    from bot.db.store import TicketStore
    company = company_of(settings)
    try:
        projects = [company.rules(code) for code in (getattr(args, "project", None) or company.codes)]
    except UnknownProject as exc:
        print(f"survey not started: {exc}", file=sys.stderr)
        return 1
    store = TicketStore(settings.database_url)
    try:
        with store.transaction() as session:
            if args.survey_command == "campaign":
                for rules in projects:
                    created, existing = surveys.start_campaign(session, rules, args.name,
                                                               per_minute=args.per_minute, now=utcnow())
                    print(f"campaign {args.name} ({rules.code}): {created} household(s) scheduled at "
                          f"{args.per_minute}/min, {existing} already scheduled; the worker sends them")
                return 0
            result = surveys.campaign_summary(session, args.name)
    finally:
        store.dispose()
    print(f"campaign {result.campaign}: {result.surveys} surveys, {result.sent} sent, {result.answered} answered "
          f"({result.response_rate:.0%}), {result.no_answer} no answer")
    print(f"satisfaction rate (satisfied or neutral): {result.satisfaction_rate:.0%}  verdicts: {result.verdicts}")
    for dimension, average in sorted(result.averages.items()):
        print(f"  {dimension:<12} {average:.2f} / 5")
    return 0


if __name__ == "__main__":
    sys.exit(main())
