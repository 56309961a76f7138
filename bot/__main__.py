"""Command line: python -m bot {serve,stack,migrate,train}."""
from __future__ import annotations

import argparse
import logging
import sys

from bot.config import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description="物业客服助手 service commands")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    sub.add_parser("stack", help="migrate, train if needed, start actions + Rasa + gateway")
    sub.add_parser("migrate", help="upgrade the ticket store schema to the latest revision")
    sub.add_parser("train", help="train the Rasa model unless an identical one is cached")
    residents = sub.add_parser("residents", help="the household roster (一户一档)")
    residents_sub = residents.add_subparsers(dest="residents_command", required=True)
    roster = residents_sub.add_parser("import", help="import a UTF-8 CSV: room,name,phone[,tags,...]")
    roster.add_argument("file")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    if args.command == "serve":
        from aiohttp import web

        from bot.gateway.access_log import PathOnlyAccessLogger
        from bot.gateway.app import create_app

        host = args.host or settings.gateway_host
        if settings.is_development:
            from bot.gateway.simulator import SimulatorRefused, check_allowed

            try:
                check_allowed(settings, host)
            except SimulatorRefused as exc:
                print(f"refusing to start: {exc}", file=sys.stderr)
                return 2
        web.run_app(create_app(settings), host=host, port=args.port or settings.gateway_port, print=None,
                    access_log_class=PathOnlyAccessLogger)
        return 0
    if args.command == "stack":
        from bot.stack import run_stack

        return run_stack(settings)
    if args.command == "migrate":
        from bot import migrate

        migrate.upgrade(settings.database_url)
        return 0
    if args.command == "residents":
        from pathlib import Path

        from bot.residents import RosterError, import_roster
        from bot.store import TicketStore

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
    if args.command == "train":
        from bot.model_cache import ensure_model

        print(ensure_model())
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
