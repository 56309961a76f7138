"""China's working-day calendar: public holidays and make-up working days (调休).

The official calendar comes from `chinesecalendar`, whose data ends at a known year
(the State Council publishes each year's arrangement in the autumn before). Beyond it
we fall back to the project's working weekdays plus a holiday file the company edits,
warn once per year, and never fail: a deadline a day off is better than no deadline.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Iterable

import yaml

log = logging.getLogger(__name__)


def _official_years() -> tuple[int, int] | None:
    try:
        from chinese_calendar import constants
    except ImportError:  # pragma: no cover - the lock installs it; stay usable without
        return None
    years = {day.year for day in constants.holidays} | {day.year for day in constants.workdays}
    return (min(years), max(years)) if years else None


_OFFICIAL_YEARS = _official_years()


def official_years() -> tuple[int, int] | None:
    """First and last year the bundled official calendar covers."""
    return _OFFICIAL_YEARS


@dataclass(frozen=True)
class WorkCalendar:
    """Which local dates are working days for this project."""

    working_weekdays: frozenset[int] = frozenset({1, 2, 3, 4, 5})  # ISO weekdays, Monday = 1
    # The company's own file: extra days off and extra working days. They win over the
    # official calendar (a project may close on a local holiday).
    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()
    use_official: bool = True
    official_range: tuple[int, int] | None = field(default_factory=official_years)
    # Years this calendar has already warned about (per calendar, so what one project or test
    # computed never silences another's warning).
    _warned_years: set[int] = field(default_factory=set, compare=False, repr=False)

    def is_working_day(self, day: date) -> bool:
        if isinstance(day, datetime):
            day = day.date()
        if day in self.holidays:
            return False
        if day in self.workdays:
            return True
        if self.use_official and self.official_range and self.official_range[0] <= day.year <= self.official_range[1]:
            from chinese_calendar import is_workday

            return bool(is_workday(day))
        if self.use_official and day.year not in self._warned_years:
            self._warned_years.add(day.year)
            log.warning("no official holiday calendar for %d (bundled data covers %s); using working weekdays "
                        "plus the project's holiday file — add %d's holidays and make-up days to it",
                        day.year, "-".join(map(str, self.official_range or ())) or "nothing", day.year)
        return day.isoweekday() in self.working_weekdays

    def add_working_days(self, start: datetime, days: int) -> datetime:
        """Same local time of day, `days` working days later (days off skipped)."""
        moment = start
        remaining = days
        # A year without a working day is not a real calendar: stop there rather than loop.
        for _ in range(days + 366):
            if remaining <= 0:
                break
            moment = moment + timedelta(days=1)
            if self.is_working_day(moment.date()):
                remaining -= 1
        return moment


def _dates(values: Iterable[Any] | None) -> frozenset[date]:
    return frozenset(date.fromisoformat(str(v)) for v in values or ())


def load_holiday_file(path: Path) -> tuple[frozenset[date], frozenset[date]]:
    """(holidays, workdays) from the company's YAML file; a missing file is empty."""
    if not path.exists():
        log.warning("holiday file %s not found; using the official calendar and weekdays only", path)
        return frozenset(), frozenset()
    with open(path, encoding="utf-8") as handle:
        raw = yaml.safe_load(handle) or {}
    return _dates(raw.get("holidays")), _dates(raw.get("workdays"))


def parse_calendar(raw: dict[str, Any], base_dir: Path | None) -> WorkCalendar:
    """From the project YAML's `calendar` section (and the `sla` keys older files used)."""
    section = dict(raw.get("calendar") or {})
    sla = raw.get("sla") or {}
    holidays = _dates(section.get("holidays")) | _dates(sla.get("holidays"))
    workdays = _dates(section.get("workdays"))
    holiday_file = section.get("holiday_file")
    if holiday_file and base_dir is not None:
        file_holidays, file_workdays = load_holiday_file(base_dir / str(holiday_file))
        holidays |= file_holidays
        workdays |= file_workdays
    weekdays = section.get("working_weekdays", sla.get("working_days", (1, 2, 3, 4, 5)))
    return WorkCalendar(working_weekdays=frozenset(int(d) for d in weekdays), holidays=holidays,
                        workdays=workdays, use_official=bool(section.get("official", True)))
