"""Is this an emergency? Read from the situation a resident describes, not from a keyword.

A substring match fails both ways: 热水器打不着火 contains 着火 and a gas leak told by its
smell names no gas. So a description is read the way a duty clerk hears it:

1. Look-alikes are blanked first (打不着火, 火力小, 手机没电): they only resemble a hazard.
2. The text is cut into clauses; in each, every hazard's cues (its usual descriptions and
   synonyms, regular expressions from the project's rules) are looked for.
3. A cue does not count when a negation stands right before it (没有漏水), or when its
   clause says the trouble is over (已经不漏了, 修好了), belongs to the past (上次漏水, unless
   the clause also says 现在/又), or is a what-if (如果漏水).
4. A person in danger (喘不上气, 受伤) is an emergency by itself; residents at risk (老人,
   小孩) make any hazard a danger to life.

The result says what was found and from which words, so staff see why a case is urgent.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from bot.core.chinese import to_simplified
from bot.core.rules import HazardRule, UrgencyRules

# A space is punctuation to residents typing on a phone ("漏水了 快来"), and to voice input.
_CLAUSE_BREAK = re.compile(r"[，,。.！!？?；;、\n\r…~～]+|\s+|但是|不过|可是|然而|结果")
_NEGATION_REACH = 4  # characters before a cue in which a negation cancels it (没有闻到)


LEARNED = "learned"  # the hazard key of what only the learned reader flagged


@dataclass(frozen=True)
class Urgency:
    emergency: bool
    life_risk: bool = False
    hazard: str | None = None  # a HazardRule key, or "person"
    label: str = ""  # what staff read: 燃气泄漏, 有人被困 …
    cue: str = ""  # the resident's words that revealed it
    at_risk: str = ""  # who is at risk, when the resident said so (老人, 小孩 …)
    advice: str = ""  # what to do now

    @property
    def certain(self) -> bool:
        """An emergency the cues recognised (a hazard named), not only the learned reader: what
        may turn a complaint or a form's answer into an emergency repair."""
        return self.emergency and self.hazard != LEARNED

    def explain(self) -> str:
        """One line for the case's timeline and the staff card."""
        if not self.emergency:
            return ""
        who = f"；在场：{self.at_risk}" if self.at_risk else ""
        risk = "，危及人身安全" if self.life_risk else ""
        return f"{self.label}{risk}（依据：“{self.cue}”{who}）"


NOT_URGENT = Urgency(emergency=False)


@lru_cache(maxsize=512)
def _pattern(expression: str) -> re.Pattern[str]:
    return re.compile(expression)


def _blank(text: str, expressions: tuple[str, ...]) -> str:
    """Look-alikes become spaces of the same length, so nothing they contain is a cue."""
    for expression in expressions:
        text = _pattern(expression).sub(lambda m: "\u3000" * len(m.group(0)), text)
    return text


def _mentions(clause: str, words: tuple[str, ...]) -> bool:
    return any(word in clause for word in words)


def _says_resolved(clause: str, rules: UrgencyRules, hazard: HazardRule) -> bool:
    """修好了 says it is over; 还没修好 says the opposite."""
    for word in rules.resolved + hazard.resolved:
        start = clause.find(word)
        while start != -1:
            if not _negated(clause, start, rules):
                return True
            start = clause.find(word, start + 1)
    return False


def _clause_counts(clause: str, rules: UrgencyRules, hazard: HazardRule) -> bool:
    """False when the clause speaks of a resolved, past or hypothetical situation."""
    if _says_resolved(clause, rules, hazard) or _mentions(clause, rules.hypothetical):
        return False
    return not (_mentions(clause, rules.past) and not _mentions(clause, rules.present))


def _negated(clause: str, start: int, rules: UrgencyRules) -> bool:
    before = clause[max(0, start - _NEGATION_REACH):start]
    return any(before.endswith(word) for word in rules.negations)


def _unnegated(clause: str, expression: str, rules: UrgencyRules) -> str | None:
    for match in _pattern(expression).finditer(clause):
        if match.group(0).strip("\u3000") and not _negated(clause, match.start(), rules):
            return match.group(0)
    return None


def _all_groups(text: str, groups: tuple[str, ...], rules: UrgencyRules) -> str | None:
    """The words matched when every group matches in `text`; None when one does not."""
    found = []
    for group in groups:
        words = _unnegated(text, group, rules)
        if words is None:
            return None
        found.append(words)
    return "…".join(found)


_QUESTION = re.compile(r"吗|么|没有?$|了没|好了没|是不是|[?？]")


def _over_later(clauses: list[str], index: int, rules: UrgencyRules, hazard: HazardRule) -> bool:
    """A later clause says it is over ("闻到煤气味…他们来查过说没事了"), and does not ask."""
    return any(_says_resolved(clause, rules, hazard) and not _QUESTION.search(clause) for clause in clauses[index + 1:])


def _first_cue(clauses: list[str], hazard: HazardRule, rules: UrgencyRules) -> str | None:
    counting = [(i, clause) for i, clause in enumerate(clauses) if _clause_counts(clause, rules, hazard)]
    for index, clause in counting:
        found = next((w for w in (_unnegated(clause, e, rules) for e in hazard.cues) if w), None) or \
            next((w for w in (_all_groups(clause, groups, rules) for groups in hazard.together) if w), None)
        if found and not _over_later(clauses, index, rules, hazard):
            return found
    if counting and _over_later(clauses, counting[-1][0], rules, hazard):
        return None
    message = "，".join(clause for _, clause in counting)
    for groups in hazard.together_in_message:
        words = _all_groups(message, groups, rules)
        if words:
            return words
    return None


_WORDS = re.compile(r"[\u4e00-\u9fffA-Za-z0-9]")
READER_MIN_CHARACTERS = 6
_NO_HAZARD = HazardRule(key="", label="", life_risk=False, advice="", cues=())


def _clauses(text: str) -> list[str]:
    return [part for part in _CLAUSE_BREAK.split(text) if part.strip("\u3000 ")]


def assess(description: str, rules: UrgencyRules) -> Urgency:
    """What the description reveals: the first hazard found, in the order the rules list them
    (those that endanger life come first in the default rules), or NOT_URGENT."""
    return _assess(description or "", rules)


# One reading per description: a repair form's validation reads the same description up to six
# times in one action call (rasa_sdk asks for the required slots three times, the extractors and
# validators once more each), and again at every later turn of the form. The reading depends on
# nothing but the text and the (frozen) rules.
@lru_cache(maxsize=1024)
def _assess(description: str, rules: UrgencyRules) -> Urgency:
    text = to_simplified(description)
    if not text.strip():
        return NOT_URGENT
    for wrong, right in rules.spellings:
        text = text.replace(wrong, right)
    every_look_alike = tuple(e for hazard in rules.hazards for e in hazard.look_alikes)
    clauses = _clauses(_blank(text, every_look_alike))
    at_risk = next((word for word in rules.people_at_risk if word in text), "")
    danger = rules.person_in_danger
    danger_cue = _first_cue(clauses, danger, rules) if danger else None
    for hazard in rules.hazards:
        cue = _first_cue(clauses, hazard, rules)
        if cue is None or (not hazard.life_risk and not at_risk and _mentions(text, hazard.calm)):
            continue
        life_risk = hazard.life_risk or bool(at_risk) or danger_cue is not None
        advice = hazard.advice
        if danger is not None and danger_cue is not None and not hazard.life_risk:
            advice = f"{danger.advice}{advice}"  # the person first, then the water or the power
        return Urgency(True, life_risk, hazard.key, hazard.label, cue, at_risk, advice)
    if danger is not None and danger_cue is not None:
        return Urgency(True, True, danger.key, danger.label, danger_cue, at_risk, danger.advice)
    return _second_reading(clauses, text, at_risk, rules)


def _second_reading(clauses: list[str], text: str, at_risk: str, rules: UrgencyRules) -> Urgency:
    """What the cues missed, the learned reader may still recognise. It reads the message as
    written (it learned from whole descriptions, look-alikes included, so it knows 打不着火
    from 着火 by itself) and the whole message at once, so a message that says anywhere that
    the trouble is over, past or only a what-if is not read at all."""
    if rules.reader is None or not _clause_counts("，".join(clauses), rules, _NO_HAZARD):
        return NOT_URGENT
    # It judges the situation, not who is there: residents at risk raise a hazard's urgency
    # (above) but are no hazard themselves (孩子发烧了). Too few words to judge: no reading.
    situation = _blank(text, tuple(re.escape(word) for word in rules.people_at_risk))
    if len(_WORDS.findall(situation)) < READER_MIN_CHARACTERS:
        return NOT_URGENT
    judgement = rules.reader.judge(situation)
    if judgement.probability < rules.reader_threshold:
        return NOT_URGENT
    return Urgency(True, False, LEARNED, "疑似紧急（与已知紧急描述相似）", "…".join(judgement.evidence), at_risk,
                   rules.reader_advice)
