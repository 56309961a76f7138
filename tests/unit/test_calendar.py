"""Working days with China's public holidays and make-up days, and the fallback beyond the data."""
import logging
from datetime import date, datetime, timedelta

import yaml

from bot.core.kinds import Priority, TicketKind
from bot.core.rules import parse_rules
from bot.core.sla import callback_send_at, compute_due_at, compute_final_due_at, next_progress_update_at
from bot.core.workdays import WorkCalendar, official_years
from bot.settings import PROJECT_ROOT


def raw_rules() -> dict:
    with open(PROJECT_ROOT / "project" / "default.yml", encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def local(y, m, d, hh=10, mm=0) -> datetime:
    """A Shanghai wall-clock time as the naive UTC the store keeps."""
    return datetime(y, m, d, hh, mm) - timedelta(hours=8)


def test_national_day_holiday_moves_a_complaint_deadline(rules):
    # Tue 30 Sep 2025: 1-8 October are public holidays, so the 2 working days are 9 and 10 October.
    due = compute_due_at(TicketKind.COMPLAINT, Priority.GENERAL, local(2025, 9, 30), rules)
    assert due == local(2025, 10, 10)


def test_make_up_working_day_counts(rules):
    # Fri 10 Oct 2025: Saturday 11 October is a make-up working day (调休), Monday the second one.
    due = compute_due_at(TicketKind.COMPLAINT, Priority.GENERAL, local(2025, 10, 10), rules)
    assert due == local(2025, 10, 13)
    weekdays_only = WorkCalendar(use_official=False)
    assert weekdays_only.add_working_days(datetime(2025, 10, 10, 10), 2) == datetime(2025, 10, 14, 10)


def test_spring_festival_moves_the_hard_limit_and_progress_updates(rules):
    # Fri 13 Feb 2026; Sat 14 Feb is a make-up day, 15-23 Feb are the Spring Festival holiday.
    created = local(2026, 2, 13)
    assert compute_final_due_at(TicketKind.COMPLAINT, Priority.GENERAL, created, rules) == local(2026, 3, 2)
    first = next_progress_update_at(created, None, rules)
    assert first == local(2026, 2, 25)  # 14 Feb, 24 Feb, 25 Feb
    assert next_progress_update_at(created, first, rules) == local(2026, 2, 27)


def test_beyond_the_official_data_falls_back_to_weekdays_and_the_company_file(tmp_path, caplog):
    first, last = official_years()
    assert first <= 2025 <= last
    year = last + 1
    holiday_file = tmp_path / "holidays.yml"
    # The company adds a day off on a Wednesday and a make-up Saturday for the new year.
    wednesday = next(date(year, 1, d) for d in range(5, 12) if date(year, 1, d).isoweekday() == 3)
    saturday = wednesday + timedelta(days=3)
    holiday_file.write_text(f"holidays: ['{wednesday}']\nworkdays: ['{saturday}']\n", encoding="utf-8")
    raw = raw_rules()
    project_file = tmp_path / "project.yml"
    raw["calendar"]["holiday_file"] = "holidays.yml"
    project_file.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    rules = parse_rules(raw, tmp_path)
    tuesday = datetime.combine(wednesday - timedelta(days=1), datetime.min.time()).replace(hour=10)
    with caplog.at_level(logging.WARNING, logger="bot.core.workdays"):
        # Tue -> (Wed off) Thu, Fri, (Sat make-up) -> 3 working days end on Saturday.
        assert rules.calendar.add_working_days(tuesday, 3) == tuesday + timedelta(days=4)
        assert rules.calendar.add_working_days(tuesday, 4) == tuesday + timedelta(days=6)  # Sun off -> Mon
        rules.calendar.is_working_day(date(year, 6, 1))
    warnings = [r for r in caplog.records if str(year) in r.getMessage()]
    assert len(warnings) == 1, "the fallback warns once per year, not on every date"


def test_a_missing_holiday_file_does_not_crash(tmp_path):
    raw = raw_rules()
    raw["calendar"]["holiday_file"] = "does-not-exist.yml"
    rules = parse_rules(raw, tmp_path)
    assert rules.calendar.is_working_day(date(2026, 11, 27))  # a Friday


def test_callback_waits_out_the_night_but_never_past_its_deadline(rules):
    # Done at 20:00: two hours later is 22:00, inside quiet hours -> 08:00 next morning (within 24 h).
    assert callback_send_at(local(2026, 11, 26, 20, 0), rules) == local(2026, 11, 27, 8, 0)
    # Done at 14:00: 16:00 is fine.
    assert callback_send_at(local(2026, 11, 26, 14, 0), rules) == local(2026, 11, 26, 16, 0)
