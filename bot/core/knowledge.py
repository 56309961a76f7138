"""The FAQ knowledge base (咨询) and referrals for requests outside property services.

The NLU model only recognises *which* question was asked (`faq/<topic>`); the answer is a
template from the project YAML filled with that project's facts (fees, phones, hours,
places). A property company edits facts and wording without retraining. Questions that
belong to another public body get that body's name and how to reach it.
"""
from __future__ import annotations

import string
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

FAQ_PREFIX = "faq/"


class KnowledgeError(ValueError):
    """The project YAML's FAQ section is inconsistent (e.g. a template names a missing fact)."""


@dataclass(frozen=True)
class Referral:
    department: str
    topics: tuple[str, ...]
    contact: str


@dataclass(frozen=True)
class KnowledgeBase:
    facts: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    answers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    referrals: tuple[Referral, ...] = ()
    referral_default: str = ""

    def topics(self) -> list[str]:
        return sorted(self.answers)

    def answer(self, topic: str) -> str | None:
        """The filled answer for `fee_payment` or `faq/fee_payment`; None for an unknown topic."""
        template = self.answers.get(topic.removeprefix(FAQ_PREFIX))
        return template.format_map(self.facts) if template is not None else None

    def referral_for(self, text: str) -> Referral | None:
        """The public body a message outside property services belongs to, if we know it."""
        for referral in self.referrals:
            if any(topic in text for topic in referral.topics):
                return referral
        return None


def _placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def parse_knowledge(raw: Mapping[str, Any], derived_facts: Mapping[str, str]) -> KnowledgeBase:
    """Read `facts`, `faq`, `referrals` and `referral_default`; refuse templates with unknown facts.

    `derived_facts` are facts the YAML states elsewhere (service hours, phone), so each
    fact is written once.
    """
    facts = {**{k: str(v) for k, v in derived_facts.items()},
             **{str(k): str(v) for k, v in (raw.get("facts") or {}).items()}}
    answers = {str(k): str(v).strip() for k, v in (raw.get("faq") or {}).items()}
    for topic, template in answers.items():
        try:
            missing = _placeholders(template) - facts.keys()
        except ValueError as exc:  # an unbalanced brace
            raise KnowledgeError(f"faq.{topic}: {exc}") from exc
        if missing:
            raise KnowledgeError(f"faq.{topic} uses unknown fact(s): {', '.join(sorted(missing))}")
    referrals = tuple(
        Referral(department=str(item["department"]), topics=tuple(str(t) for t in item.get("topics") or ()),
                 contact=str(item.get("contact") or ""))
        for item in raw.get("referrals") or ()
    )
    return KnowledgeBase(facts=MappingProxyType(facts), answers=MappingProxyType(answers), referrals=referrals,
                         referral_default=str(raw.get("referral_default") or "").strip())
