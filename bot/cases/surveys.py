"""Satisfaction surveys: the callback after a case and the annual survey.

A survey is opened in the resident's conversation; their reply is read here: scores 1–5
per dimension (or one overall score), words of (dis)satisfaction, and a free comment.
Satisfied closes the case; a low score or 不满意 reopens it and alerts staff, because the
rule is to re-investigate until the resident is satisfied.
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.cases import alerts
from bot.cases.tickets import RESIDENT, add_event, transition
from bot.core.chinese import to_simplified
from bot.core.clock import utcnow
from bot.core.kinds import TicketStatus
from bot.core.rules import ProjectRules
from bot.db import queue
from bot.db.models import Resident, Survey, SurveyScore, SurveyStatus, Ticket
from bot.db.records import SYSTEM

CALLBACK = "callback"
ANNUAL = "annual"

# Callback dimensions (key, label residents see), in the order residents are asked.
CALLBACK_DIMENSIONS: tuple[tuple[str, str], ...] = (
    ("response", "响应速度"), ("attitude", "服务态度"), ("quality", "处理质量"))

# Words that name a dimension when a resident labels their scores ("态度5分，质量3分").
_DIMENSION_WORDS: dict[str, tuple[str, ...]] = {
    "response": ("响应", "速度", "及时", "快慢"),
    "attitude": ("态度",),
    "quality": ("质量", "效果", "修得", "处理得"),
    "efficiency": ("效率",),
    "facilities": ("设施", "设备"),
}
AWAITING_ANSWER = (SurveyStatus.SENT.value, SurveyStatus.REMINDED.value)

_DISSATISFIED = ("不满意", "不太满意", "不怎么满意", "很差", "太差", "差评", "没修好", "没有修好", "还没好",
                 "没解决", "没有解决", "不行", "糟糕", "敷衍", "又坏", "还是坏", "还在漏", "垃圾", "失望")
_NEUTRAL = ("一般", "还行", "凑合", "马马虎虎", "还可以", "过得去")
_SATISFIED = ("满意", "很好", "挺好", "不错", "好评", "非常好", "满分", "点赞", "辛苦", "给力", "棒", "完美")
_CN_DIGITS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5}
_NOTHING_MORE = re.compile(r"^(没有|没了|无|没|没有了|没啥|没什么|不用了|就这样|暂时没有|没有意见|没意见)[。.!！~～]*$")


class Verdict(str, enum.Enum):
    SATISFIED = "satisfied"
    NEUTRAL = "neutral"
    DISSATISFIED = "dissatisfied"
    UNCLEAR = "unclear"


class Outcome(str, enum.Enum):
    CLOSED = "closed"  # satisfied: the case is closed
    REOPENED = "reopened"  # dissatisfied: back to work, staff alerted
    RECORDED = "recorded"  # stored (annual survey, or the case had already moved on)


@dataclass(frozen=True)
class Answer:
    scores: dict[str, int] = field(default_factory=dict)
    overall: int | None = None
    verdict: Verdict = Verdict.UNCLEAR
    comment: str = ""

    @property
    def understood(self) -> bool:
        return self.verdict is not Verdict.UNCLEAR

    @property
    def has_scores(self) -> bool:
        return bool(self.scores) or self.overall is not None


def _normalise(text: str) -> str:
    text = to_simplified(text or "")
    return text.translate(str.maketrans("０１２３４５６７８９", "0123456789")).strip()


def _numbers(text: str) -> list[tuple[int, int, int]]:
    """(score, start, end) for each 1–5 score in the text, in order."""
    found = []
    for match in re.finditer(r"(?<![0-9.])([0-9]+)(?:\s*(?:分|星|颗星))?(?![0-9.])", text):
        value = int(match.group(1))
        if 1 <= value <= 5:
            found.append((value, match.start(), match.end()))
    # Chinese numerals count only as scores: "五分", "三星", or a reply such as "五五四".
    for match in re.finditer(r"([一二两三四五])\s*(?:分|星|颗星)", text):
        if not (match.start() > 0 and text[match.start() - 1] == "十"):
            found.append((_CN_DIGITS[match.group(1)], match.start(), match.end()))
    bare = re.fullmatch(r"\s*([一二两三四五](?:\s*[，,、 ]?\s*[一二两三四五]){0,3})\s*", text)
    if bare and not found:
        # The whole reply is the scores: the first carries the span so none of it is a comment.
        digits = [c for c in bare.group(1) if c in _CN_DIGITS]
        found = [(_CN_DIGITS[c], bare.start(1) if i == 0 else bare.end(1), bare.end(1)) for i, c in enumerate(digits)]
    return sorted(found, key=lambda item: item[1])


def _labelled(text: str, numbers: list[tuple[int, int, int]], dimensions: Sequence[str]) -> dict[str, int]:
    """Scores a resident tied to a dimension by naming it just before the number."""
    scores: dict[str, int] = {}
    for value, start, _end in numbers:
        before = text[max(0, start - 6):start]
        for key in dimensions:
            if key not in scores and any(word in before for word in _DIMENSION_WORDS.get(key, ())):
                scores[key] = value
                break
    return scores


def _sentiment(text: str) -> Verdict | None:
    if any(word in text for word in _DISSATISFIED):
        return Verdict.DISSATISFIED
    if any(word in text for word in _NEUTRAL):
        return Verdict.NEUTRAL
    if any(word in text for word in _SATISFIED):
        return Verdict.SATISFIED
    return None


def _comment(text: str, numbers: list[tuple[int, int, int]]) -> str:
    rest = text
    for _value, start, end in sorted(numbers, key=lambda item: -item[1]):
        rest = rest[:start] + " " + rest[end:]
    for words in _DIMENSION_WORDS.values():
        for word in words:
            rest = rest.replace(word, " ")
    rest = re.sub(r"(总体|总的|整体|综合|打|给|评)\s*(来说|分)?", " ", rest)
    rest = re.sub(r"^[\s，,。.!！、;；:：~～]+|[\s，,。.!！、;；:：~～]+$", "", rest)
    rest = re.sub(r"\s+", " ", rest)
    return rest if len(rest) >= 2 and not _NOTHING_MORE.match(rest) else ""


def parse_answer(text: str, dimensions: Sequence[str], dissatisfied_max: int = 2) -> Answer:
    """Read a survey reply. Scores ≤ `dissatisfied_max` or words like 不满意 mean dissatisfied."""
    clean = _normalise(text)
    numbers = _numbers(clean)
    scores = _labelled(clean, numbers, dimensions)
    overall = None
    if not scores:
        values = [value for value, _s, _e in numbers]
        if len(values) == 1:
            overall = values[0]
        elif len(values) >= 2:
            scores = dict(zip(dimensions, values))
    sentiment = _sentiment(clean)
    given = list(scores.values()) + ([overall] if overall is not None else [])
    if given and min(given) <= dissatisfied_max:
        verdict = Verdict.DISSATISFIED
    elif sentiment is Verdict.DISSATISFIED:
        verdict = Verdict.DISSATISFIED
    elif given:
        average = sum(given) / len(given)
        verdict = Verdict.SATISFIED if average >= 4 else Verdict.NEUTRAL
    else:
        verdict = sentiment or Verdict.UNCLEAR
    return Answer(scores, overall, verdict, _comment(clean, numbers))


def is_nothing_more(text: str) -> bool:
    return bool(_NOTHING_MORE.match(_normalise(text)))


def read_reply(reply: str, dimensions: Sequence[str], dissatisfied_max: int, extra_comment: str = "") -> Answer:
    """A resident's whole survey reply: the answer message, and a comment given when asked for one.

    A reply that could not be read is kept whole as the comment, for staff to read.
    """
    answer = parse_answer(reply, dimensions, dissatisfied_max)
    if extra_comment:
        answer = Answer(answer.scores, answer.overall, answer.verdict,
                        "；".join(c for c in (answer.comment, extra_comment) if c))
    if not answer.understood and not answer.comment:
        answer = Answer(comment=reply.strip())
    return answer


# --- the survey's life ------------------------------------------------------------


def _labels_for(survey: Survey | None, rules: ProjectRules) -> dict[str, str]:
    # The same key may read differently: a callback's "quality" is 处理质量, the annual one's 服务质量.
    return dict(rules.annual_survey_dimensions) if survey is not None and survey.kind == ANNUAL \
        else dict(CALLBACK_DIMENSIONS)


def dimension_keys(survey: Survey | None) -> list[str]:
    """The dimensions a survey asks about (a callback's, when the survey is unknown)."""
    return list(survey.dimensions) if survey is not None else [key for key, _label in CALLBACK_DIMENSIONS]


def dimension_labels(survey: Survey | None, rules: ProjectRules) -> list[str]:
    labels = _labels_for(survey, rules)
    return [labels.get(key, key) for key in dimension_keys(survey)]


def _survey_for(session: Session, *, kind: str, project: str, resident_id: int, campaign: str,
                dimensions: list[str], now: datetime, ticket: Ticket | None = None) -> Survey:
    """The one survey of this kind, resident and campaign; created on first use."""
    existing = session.execute(
        select(Survey).where(Survey.kind == kind, Survey.resident_id == resident_id, Survey.campaign == campaign)
    ).scalar_one_or_none()
    if existing is not None:
        return existing
    survey = Survey(kind=kind, project=project, ticket=ticket, resident_id=resident_id, campaign=campaign, dimensions=dimensions,
                    status=SurveyStatus.SCHEDULED.value, created_at=now)
    session.add(survey)
    session.flush()
    return survey


def callback_survey_for(session: Session, ticket: Ticket, resolved_at: str, now: datetime) -> Survey:
    """The callback survey for this completion of the ticket (one per completion)."""
    if ticket.resident_id is None:
        raise ValueError(f"ticket {ticket.number} has no resident to survey")
    return _survey_for(session, kind=CALLBACK, project=ticket.project, resident_id=ticket.resident_id,
                       campaign=f"resolved:{resolved_at}",
                       dimensions=dimension_keys(None), now=now, ticket=ticket)


def annual_survey_for(session: Session, rules: ProjectRules, resident: Resident, campaign: str,
                      now: datetime, dimensions: Sequence[str] | None = None) -> Survey:
    """The resident's survey of this campaign; `dimensions`: the ones the campaign asks (of the
    project's annual_survey_dimensions, in their order), all of them by default."""
    keys = [key for key, _label in rules.annual_survey_dimensions if not dimensions or key in dimensions]
    return _survey_for(session, kind=ANNUAL, project=resident.project, resident_id=resident.id, campaign=campaign,
                       dimensions=keys, now=now)


def survey_by_id(session: Session, survey_id: int | None) -> Survey | None:
    return session.get(Survey, survey_id) if survey_id else None


def open_survey_of(session: Session, openid: str) -> Survey | None:
    """The survey waiting for this resident's answer, newest first."""
    return session.execute(
        select(Survey).join(Resident, Survey.resident_id == Resident.id)
        .where(Resident.openid == openid, Survey.status.in_(AWAITING_ANSWER))
        .order_by(Survey.sent_at.desc(), Survey.id.desc()).limit(1)
    ).scalar_one_or_none()


def record_answer(session: Session, rules: ProjectRules, survey: Survey, answer: Answer, *, text: str,
                  channel: str, now: datetime | None = None) -> Outcome:
    """Store the answer per dimension and act on it (close, or reopen and alert staff)."""
    now = now or utcnow()
    if survey.status not in AWAITING_ANSWER:
        return Outcome.RECORDED
    for key, score in answer.scores.items():
        session.add(SurveyScore(survey_id=survey.id, dimension=key, score=score))
    survey.overall_score = answer.overall
    survey.verdict = answer.verdict.value
    survey.comment = answer.comment or None
    survey.status = SurveyStatus.ANSWERED.value
    survey.answered_at = now
    summary = describe_answer(survey, answer, rules)
    ticket = survey.ticket
    if ticket is None:
        if answer.verdict is Verdict.DISSATISFIED:
            alerts.raise_alert(session, reason=alerts.DISSATISFIED, key=f"survey:{survey.id}:dissatisfied", now=now,
                               project=survey.project, detail=f"annual survey {survey.campaign}: {summary}")
        return Outcome.RECORDED
    add_event(session, ticket, actor=RESIDENT, channel=channel, action="survey_answer", content=text,
              result=summary, now=now)
    if TicketStatus(ticket.status) is not TicketStatus.RESOLVED:
        return Outcome.RECORDED
    if answer.verdict is Verdict.DISSATISFIED:
        transition(session, ticket, TicketStatus.REOPENED, rules=rules, actor=RESIDENT, channel=channel,
                   content=text, result="dissatisfied in callback", now=now)
        alerts.raise_alert(session, reason=alerts.DISSATISFIED, ticket=ticket, key=f"survey:{survey.id}:dissatisfied",
                           detail=f"resident dissatisfied with {ticket.number}: {summary}", now=now)
        return Outcome.REOPENED
    if answer.verdict is Verdict.UNCLEAR:
        alerts.raise_alert(session, reason=alerts.SURVEY_UNCLEAR, ticket=ticket, key=f"survey:{survey.id}:unclear",
                           detail=f"callback answer for {ticket.number} needs a person to read it", now=now)
        return Outcome.RECORDED
    transition(session, ticket, TicketStatus.CLOSED, rules=rules, actor=RESIDENT, channel=channel,
               content=text, result=f"callback: {answer.verdict.value}", now=now)
    return Outcome.CLOSED


def describe_answer(survey: Survey, answer: Answer, rules: ProjectRules) -> str:
    labels = _labels_for(survey, rules)
    parts = [f"{labels.get(k, k)}{v}分" for k, v in answer.scores.items()]
    if answer.overall is not None:
        parts.append(f"总体{answer.overall}分")
    parts.append(f"verdict={answer.verdict.value}")
    if answer.comment:
        parts.append(f"意见：{answer.comment}")
    return "；".join(parts)


def close_unanswered(session: Session, rules: ProjectRules, survey: Survey, now: datetime) -> bool:
    """No answer after the reminder: the survey is closed as 'no answer', and so is its case."""
    if survey.status not in AWAITING_ANSWER:
        return False
    survey.status = SurveyStatus.NO_ANSWER.value
    ticket = survey.ticket
    if ticket is not None and TicketStatus(ticket.status) is TicketStatus.RESOLVED:
        transition(session, ticket, TicketStatus.CLOSED, rules=rules, actor=SYSTEM, channel=SYSTEM,
                   content="回访未获答复", result="callback: no answer", now=now)
    return True


# --- annual campaign summary ------------------------------------------------------


@dataclass(frozen=True)
class CampaignSummary:
    campaign: str
    surveys: int
    sent: int
    answered: int
    no_answer: int
    verdicts: dict[str, int]
    averages: dict[str, float]

    @property
    def response_rate(self) -> float:
        return self.answered / self.sent if self.sent else 0.0

    @property
    def satisfaction_rate(self) -> float:
        """Share of answers that were satisfied or neutral (KPI 客户满意度)."""
        judged = sum(n for verdict, n in self.verdicts.items() if verdict != Verdict.UNCLEAR.value)
        happy = self.verdicts.get(Verdict.SATISFIED.value, 0) + self.verdicts.get(Verdict.NEUTRAL.value, 0)
        return happy / judged if judged else 0.0


def campaign_summary(session: Session, campaign: str) -> CampaignSummary:
    base = select(Survey).where(Survey.kind == ANNUAL, Survey.campaign == campaign)
    surveys = session.execute(base).scalars().all()
    sent = [s for s in surveys if s.sent_at is not None]
    verdicts: dict[str, int] = {}
    for survey in surveys:
        if survey.verdict:
            verdicts[survey.verdict] = verdicts.get(survey.verdict, 0) + 1
    averages = {
        dimension: round(float(avg), 2)
        for dimension, avg in session.execute(
            select(SurveyScore.dimension, func.avg(SurveyScore.score)).join(Survey, SurveyScore.survey_id == Survey.id)
            .where(Survey.kind == ANNUAL, Survey.campaign == campaign).group_by(SurveyScore.dimension)
        ).all()
    }
    overall = [s.overall_score for s in surveys if s.overall_score is not None]
    if overall:
        averages["overall"] = round(sum(overall) / len(overall), 2)
    return CampaignSummary(
        campaign=campaign, surveys=len(surveys), sent=len(sent),
        answered=sum(1 for s in surveys if s.status == SurveyStatus.ANSWERED.value),
        no_answer=sum(1 for s in surveys if s.status == SurveyStatus.NO_ANSWER.value),
        verdicts=verdicts, averages=averages)



def start_campaign(session: Session, rules: ProjectRules, campaign: str, *, per_minute: int,
                   now: datetime, dimensions: Sequence[str] | None = None) -> tuple[int, int]:
    """One annual-survey job per bound, following household of the project, spaced to `per_minute`.

    Running it again (after an interruption, or to add households bound since) schedules
    only what is missing. Returns (newly scheduled, already scheduled).
    """
    residents = session.execute(
        select(Resident.id).where(Resident.project == rules.code, Resident.bound_at.is_not(None),
                                  Resident.subscribed.is_(True),
                                  Resident.openid.is_not(None)).order_by(Resident.id)
    ).scalars().all()
    spacing = timedelta(seconds=60 / max(per_minute, 1))
    created = existing = 0
    for resident_id in residents:
        due = now + spacing * created
        if queue.enqueue(session, kind=queue.ANNUAL_SURVEY, project=rules.code, due_at=due,
                         key=f"annual:{campaign}:{resident_id}", now=now,
                         payload={"campaign": campaign, "resident_id": resident_id,
                                  **({"dimensions": list(dimensions)} if dimensions else {})},
                         max_attempts=rules.follow_up.job_max_attempts):
            created += 1
        else:
            existing += 1
    return created, existing
