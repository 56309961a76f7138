"""Command line: python -m bot {serve,stack,worker,survey,migrate,train,residents}."""
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
    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    sub.add_parser("stack", help="migrate, train if needed, start actions + Rasa + gateway")
    migrate_cmd = sub.add_parser("migrate", help="upgrade the ticket store schema to the latest revision")
    migrate_cmd.add_argument("--check", action="store_true",
                             help="change nothing: exit 0 when the store answers and is up to date, else 1")
    sub.add_parser("train", help="train the Rasa model unless an identical one is cached")
    residents = sub.add_parser("residents", help="the household roster (一户一档)")
    residents_sub = residents.add_subparsers(dest="residents_command", required=True)
    roster = residents_sub.add_parser("import", help="import a UTF-8 CSV: room,name,phone[,tags,...]")
    roster.add_argument("file")
    sub.add_parser("staffbot", help="run the Telegram staff bot (needs TELEGRAM_BOT_TOKEN and STAFF_CHAT_ID)")
    worker = sub.add_parser("worker", help="run scheduled follow-ups (callbacks, updates, SLA checks)")
    worker.add_argument("--once", action="store_true", help="run what is due now, then exit")
    worker.add_argument("--now", help="ISO time to treat as now (naive = project local time)")
    survey = sub.add_parser("survey", help="the annual satisfaction survey")
    survey_sub = survey.add_subparsers(dest="survey_command", required=True)
    campaign = survey_sub.add_parser("campaign", help="send the survey to every bound household (resumable)")
    campaign.add_argument("--name", required=True, help="campaign name, e.g. 2026")
    campaign.add_argument("--per-minute", type=int, default=30, help="rate limit (messages per minute)")
    summary = survey_sub.add_parser("summary", help="results of a campaign")
    summary.add_argument("--name", required=True)
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    if args.command == "serve":
        from aiohttp import web

        from bot.app.access_log import PathOnlyAccessLogger
        from bot.app.gateway import create_app
        host = args.host or settings.gateway_host
        if refused_in_production(settings, "serve"):
            return 2
        if settings.is_development:
            from bot.channels.wechat.simulator import SimulatorRefused, check_allowed
            try:
                check_allowed(settings, host)
            except SimulatorRefused as exc:
                print(f"refusing to start: {exc}", file=sys.stderr)
                return 2
        web.run_app(create_app(settings), host=host, port=args.port or settings.gateway_port, print=None,
                    access_log_class=PathOnlyAccessLogger)
        return 0
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
        migrate.upgrade(settings.database_url)
        return 0
    if args.command == "residents":
        from pathlib import Path

        from bot.cases.residents import RosterError, import_roster
        from bot.db.store import TicketStore
        store = TicketStore(settings.database_url)
        try:
            with store.transaction() as session:
                created, updated = import_roster(session, Path(args.file))
        except (RosterError, OSError) as exc:
            print(f"roster not imported: {exc}", file=sys.stderr)
            return 1
        finally:
            store.dispose()
        print(f"roster imported: {created} new household contact(s), {updated} updated")
        return 0
    if args.command == "worker":
        import asyncio

        from bot.app.services import run_worker as run
        from bot.core.rules import load_rules
        if refused_in_production(settings, "worker"):
            return 2
        rules = load_rules(settings.project_config)
        try:
            now = parse_now(args.now, rules) if args.now else None
        except ValueError as exc:
            print(f"bad --now: {exc}", file=sys.stderr)
            return 2
        counts = asyncio.run(run(settings, rules, once=args.once, now=now))
        if args.once:
            print("jobs: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none due"))
        return 0
    if args.command == "staffbot":
        from bot.channels.telegram.app import run as run_staffbot
        from bot.core.rules import load_rules
        return run_staffbot(settings, load_rules(settings.project_config))
    if args.command == "survey":
        return survey_command(args, settings)
    if args.command == "train":
        from bot.app.model_cache import ensure_model
        print(ensure_model())
        return 0
    return 2


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


def survey_command(args: argparse.Namespace, settings: Settings) -> int:
    from bot.cases import surveys
    from bot.core.clock import utcnow
    from bot.core.rules import load_rules
    from bot.db.store import TicketStore
    rules = load_rules(settings.project_config)
    store = TicketStore(settings.database_url)
    try:
        with store.transaction() as session:
            if args.survey_command == "campaign":
                created, existing = surveys.start_campaign(session, rules, args.name, per_minute=args.per_minute,
                                                           now=utcnow())
                print(f"campaign {args.name}: {created} household(s) scheduled at {args.per_minute}/min, "
                      f"{existing} already scheduled; the worker sends them")
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
