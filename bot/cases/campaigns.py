"""The annual satisfaction survey run from the console (T/ZZB 8075 §9.2–9.5): start it for some
projects and dimensions, watch it, pause and resume it, read the results by dimension, project
and building, and tell the residents whose answers led to an improvement what changed."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Collection, Sequence

from sqlalchemy import ColumnElement, and_, func, select, update
from sqlalchemy.orm import Session

from bot.cases import notices, surveys
from bot.core.rooms import parse_room
from bot.core.rules import ProjectRules
from bot.db import queue
from bot.db.models import Job, JobStatus, Resident, ResidentNotice, Survey, SurveyScore, SurveyStatus

PAUSED = "paused by staff"


def _campaign_jobs(campaign: str, projects: Collection[str]) -> list[ColumnElement[bool]]:
    return [Job.kind == queue.ANNUAL_SURVEY, Job.idempotency_key.startswith(f"annual:{campaign}:"),
            Job.project.in_(sorted(projects))]


def start(session: Session, rules: ProjectRules, campaign: str, *, dimensions: Sequence[str], per_minute: int,
          now: datetime) -> tuple[int, int]:
    """One survey job per bound household of the project (what is missing only, when run again)."""
    known = {key for key, _label in rules.annual_survey_dimensions}
    chosen = [d for d in dimensions if d in known]
    return surveys.start_campaign(session, rules, campaign, per_minute=per_minute, now=now,
                                  dimensions=chosen if len(chosen) < len(known) else None)


def pause(session: Session, campaign: str, projects: Collection[str], now: datetime) -> int:
    """Stop sending: the jobs not yet run wait, marked as paused."""
    result = session.execute(update(Job).where(*_campaign_jobs(campaign, projects),
                                               Job.status == JobStatus.PENDING.value)
                             .values(status=JobStatus.CANCELLED.value, last_error=PAUSED, updated_at=now)
                             .execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)


def resume(session: Session, campaign: str, projects: Collection[str], *, per_minute: int, now: datetime) -> int:
    """Go on where it stopped, at the same rate."""
    paused = session.execute(select(Job).where(*_campaign_jobs(campaign, projects),
                                               Job.status == JobStatus.CANCELLED.value, Job.last_error == PAUSED)
                             .order_by(Job.id)).scalars().all()
    spacing = timedelta(seconds=60 / max(per_minute, 1))
    for index, job in enumerate(paused):
        job.status, job.last_error, job.due_at, job.updated_at = JobStatus.PENDING.value, None, now + spacing * index, now
    return len(paused)


@dataclass(frozen=True)
class Progress:
    campaign: str
    waiting: int  # jobs not run yet
    paused: int
    sent: int
    answered: int
    no_answer: int
    unreachable: int  # WeChat could not reach them: staff phone instead

    @property
    def response_rate(self) -> float | None:
        return self.answered / self.sent if self.sent else None


def progress(session: Session, campaign: str, projects: Collection[str]) -> Progress:
    jobs: dict[str, int] = {status: count for status, count in session.execute(
        select(Job.status, func.count()).where(*_campaign_jobs(campaign, projects)).group_by(Job.status))}
    paused = session.scalar(select(func.count()).select_from(Job).where(
        *_campaign_jobs(campaign, projects), Job.last_error == PAUSED)) or 0
    counts: dict[str, int] = {status: count for status, count in session.execute(
        select(Survey.status, func.count()).where(Survey.kind == surveys.ANNUAL, Survey.campaign == campaign,
                                                  Survey.project.in_(sorted(projects))).group_by(Survey.status))}
    sent = sum(counts.get(s.value, 0) for s in (SurveyStatus.SENT, SurveyStatus.REMINDED, SurveyStatus.ANSWERED,
                                                  SurveyStatus.NO_ANSWER))
    return Progress(campaign, waiting=jobs.get(JobStatus.PENDING.value, 0) + jobs.get(JobStatus.RUNNING.value, 0),
                    paused=paused, sent=sent, answered=counts.get(SurveyStatus.ANSWERED.value, 0),
                    no_answer=counts.get(SurveyStatus.NO_ANSWER.value, 0),
                    unreachable=counts.get(SurveyStatus.CANCELLED.value, 0))


@dataclass(frozen=True)
class PlaceScore:
    project: str
    building: str
    answered: int
    average: float | None  # the overall score 1–5


def by_place(session: Session, campaign: str, projects: Collection[str]) -> list[PlaceScore]:
    """The overall score by project and building (the room's building on the household file)."""
    rows = session.execute(select(Survey.project, Resident.room, Survey.overall_score)
                           .join(Resident, Survey.resident_id == Resident.id)
                           .where(Survey.kind == surveys.ANNUAL, Survey.campaign == campaign,
                                  Survey.project.in_(sorted(projects)), Survey.status == SurveyStatus.ANSWERED.value))
    totals: dict[tuple[str, str], list[int]] = {}
    for project, room, score in rows:
        parsed = parse_room(room) if room else None
        key = (project, parsed.building if parsed else "未知楼栋")
        totals.setdefault(key, [])
        if score is not None:
            totals[key].append(int(score))
    return [PlaceScore(project, building, len(scores), sum(scores) / len(scores) if scores else None)
            for (project, building), scores in sorted(totals.items())]


@dataclass(frozen=True)
class Remark:
    """One answer managers follow up (§9.4): a low score, or words of the resident's own."""

    project: str
    room: str | None
    overall: int | None
    low: tuple[str, ...]  # the dimensions scored at or below the project's "dissatisfied" score
    comment: str | None
    answered_at: datetime | None


def remarks(session: Session, campaign: str, projects: Collection[str], *, low_max: int) -> list[Remark]:
    """The answered surveys of the campaign with an overall or dimension score at or below
    `low_max`, or a comment; by project and room. Personal (the room, the resident's words)."""
    answered = (Survey.kind == surveys.ANNUAL, Survey.campaign == campaign, Survey.project.in_(sorted(projects)),
                Survey.status == SurveyStatus.ANSWERED.value)
    surveys_found = session.execute(select(Survey, Resident.room).join(Resident, Survey.resident_id == Resident.id)
                                    .where(*answered)).all()
    scores: dict[int, list[tuple[str, int]]] = {}
    for survey_id, dimension, score in session.execute(
            select(SurveyScore.survey_id, SurveyScore.dimension, SurveyScore.score)
            .join(Survey, SurveyScore.survey_id == Survey.id).where(*answered).order_by(SurveyScore.id)):
        scores.setdefault(survey_id, []).append((dimension, score))
    found = []
    for survey, room in surveys_found:
        low = tuple(dimension for dimension, score in scores.get(survey.id, []) if score <= low_max)
        comment = (survey.comment or "").strip() or None
        overall_low = survey.overall_score is not None and survey.overall_score <= low_max
        if low or comment or overall_low:
            found.append(Remark(survey.project, room, survey.overall_score, low, comment, survey.answered_at))
    return sorted(found, key=lambda r: (r.project, r.room or "", r.answered_at or datetime.min))


def tell_improvement(session: Session, rules: ProjectRules, campaign: str, *, dimension: str, title: str,
                     text: str, actor: str, now: datetime) -> ResidentNotice | None:
    """§9.5: the residents of the project who scored this dimension low hear what was improved
    (a notice to their rooms, through the notices' queue: once each). None when nobody did."""
    low = session.execute(
        select(Resident.room).join(Survey, Survey.resident_id == Resident.id)
        .join(SurveyScore, SurveyScore.survey_id == Survey.id)
        .where(and_(Survey.kind == surveys.ANNUAL, Survey.campaign == campaign, Survey.project == rules.code,
                    SurveyScore.dimension == dimension, SurveyScore.score <= rules.follow_up.dissatisfied_max_score,
                    Resident.room.is_not(None)))
    ).scalars().all()
    rooms = sorted(set(room for room in low if room))
    if not rooms:
        return None
    notice = notices.compose(session, rules, kind="public", title=title, body=text, rooms=rooms, actor=actor, now=now)
    notices.schedule(session, rules, notice, now)
    return notice
