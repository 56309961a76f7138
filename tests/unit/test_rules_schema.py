"""The rules files' schema: unknown keys and wrong types are refused at load, naming the file and the key."""
from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from bot.core import rules as rules_module
from bot.core.rules import parse_rules
from bot.core.rules_schema import SCHEMA, RulesFileError, check_rules, merge_rules
from bot.settings import PROJECT_ROOT

PROJECT_DIR = PROJECT_ROOT / "project"
DEFAULTS = PROJECT_DIR / "default.yml"
FILE = "projects/p2.yml"

# The mappings of default.yml whose keys are the company's own names: a new key there is
# accepted. Everywhere else a key the schema does not list is refused. Pinned here so that
# the schema cannot quietly turn a section into an open one.
OPEN_MAPS = {
    ("facts",), ("faq",), ("annual_survey_dimensions",), ("escalation", "complaint_topics"),
    ("wechat_templates",), ("wechat_templates", "*", "fields"), ("triage", "complaint_signals"),
    ("urgency", "hazards"), ("urgency", "spellings"), ("notices", "greetings", "days"),
}


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def defaults() -> dict[str, Any]:
    return load(DEFAULTS)


def refused(raw: object) -> RulesFileError:
    with pytest.raises(RulesFileError) as caught:
        check_rules(raw, FILE)
    return caught.value


def assert_names(error: RulesFileError, key: str, problem: str) -> None:
    assert error.file == FILE
    assert error.key == key
    assert str(error).startswith(f"{FILE}: {key}: "), str(error)
    assert problem in str(error), str(error)


# --- the bundled files -----------------------------------------------------------------------


def test_default_rules_file_passes(defaults):
    check_rules(defaults, str(DEFAULTS))


def _referenced(raw: dict[str, Any], folder: Path) -> set[Path]:
    """The data files a rules file names (holiday file, labelled urgency examples)."""
    names = [(raw.get("calendar") or {}).get("holiday_file")]
    names += ((raw.get("urgency") or {}).get("learned") or {}).get("examples") or []
    return {(base / str(name)).resolve() for name in names if name for base in (folder, PROJECT_DIR)}


def bundled_rules_files() -> list[Path]:
    """Every YAML file under project/ except the data files some rules file refers to."""
    files = sorted(PROJECT_DIR.rglob("*.yml"))
    data: set[Path] = set()
    for path in files:
        raw = load(path)
        if isinstance(raw, dict):
            data |= _referenced(raw, path.parent)
    return [path for path in files if path.resolve() not in data]


def test_the_bundled_rules_files_are_found():
    found = bundled_rules_files()
    assert DEFAULTS in found
    assert PROJECT_DIR / "holidays.yml" not in found
    assert PROJECT_DIR / "urgency" / "descriptions.yml" not in found


@pytest.mark.parametrize("path", bundled_rules_files(), ids=lambda p: str(p.relative_to(PROJECT_DIR)))
def test_each_bundled_rules_file_passes(path):
    check_rules(load(path), str(path))


def test_an_empty_file_passes_and_a_non_mapping_is_refused():
    check_rules(None, FILE)
    check_rules({}, FILE)
    error = refused(["sla", "faq"])
    assert error.key == ""
    assert str(error).startswith(f"{FILE}: (top level): expected a mapping")


# --- refusals --------------------------------------------------------------------------------


def test_an_unknown_top_level_key_is_refused():
    assert_names(refused({"slaa": {}}), "slaa", "unknown key (did you mean sla?)")
    assert_names(refused({"zzz": 1}), "zzz", "unknown key (expected one of: company, project, sla,")


def test_an_unknown_nested_key_is_refused_with_a_suggestion():
    error = refused({"sla": {"genral_repair_hours": 24}})
    assert str(error) == f"{FILE}: sla.genral_repair_hours: unknown key (did you mean general_repair_hours?)"
    assert_names(refused({"urgency": {"hazards": {"gas": {"lables": "燃气"}}}}),
                 "urgency.hazards.gas.lables", "did you mean label?")
    assert_names(refused({"referrals": [{"department": "派出所", "contacts": "110"}]}),
                 "referrals[0].contacts", "did you mean contact?")
    assert_names(refused({"wechat_templates": {"survey": {"template": "x"}}}),
                 "wechat_templates.survey.template", "did you mean template_id?")


@pytest.mark.parametrize("raw,key,problem", [
    ({"sla": {"general_repair_hours": "abc"}}, "sla.general_repair_hours", "expected an integer, got 'abc'"),
    ({"sla": {"general_repair_hours": "24"}}, "sla.general_repair_hours", "expected an integer, got '24'"),
    ({"sla": {"general_repair_hours": 24.5}}, "sla.general_repair_hours", "expected an integer, got 24.5"),
    ({"flood": {"max_messages": True}}, "flood.max_messages", "expected an integer, got True"),
    ({"sla": {"general_repair_hours": None}}, "sla.general_repair_hours", "expected an integer, got null"),
    ({"sla": {"special_group_factor": "half"}}, "sla.special_group_factor", "expected a number, got 'half'"),
    ({"sla": {"special_group_factor": False}}, "sla.special_group_factor", "expected a number, got False"),
    ({"urgency": {"people_at_risk": 5}}, "urgency.people_at_risk", "expected a list, got 5"),
    ({"urgency": {"negations": "没有"}}, "urgency.negations", "expected a list, got '没有'"),
    ({"escalation": {"complaint_topics": {"噪音": [1]}}}, "escalation.complaint_topics.噪音[0]",
     "expected a string, got 1 (put it in quotes"),
    ({"calendar": {"official": "yes"}}, "calendar.official", "expected true or false, got 'yes'"),
    ({"calendar": {"working_weekdays": [1, 8]}}, "calendar.working_weekdays[1]", "from 1 to 7, got 8"),
    ({"calendar": {"holidays": ["2026-02-30"]}}, "calendar.holidays[0]", "expected a date YYYY-MM-DD"),
    ({"service_hours": {"phone": 12345}}, "service_hours.phone", "expected a string, got 12345"),
    ({"service_hours": ["08:00"]}, "service_hours", "expected a mapping"),
    ({"facts": {"fee_per_m2": 2.3}}, "facts.fee_per_m2", "expected a string, got 2.3 (put it in quotes"),
    ({"facts": {1: "x"}}, "facts.1", "a name must be non-empty text"),
    ({"faq": {"fee_payment": ["a"]}}, "faq.fee_payment", "expected a string"),
    ({"urgency": {"spellings": {"然气": None}}}, "urgency.spellings.然气", "expected a string, got null"),
    ({"urgency": {"hazards": {"gas": {"life_risk": "no"}}}}, "urgency.hazards.gas.life_risk", "expected true or false"),
    ({"urgency": {"hazards": {"gas": {"together": ["燃气"]}}}}, "urgency.hazards.gas.together[0]",
     "expected a list, got '燃气'"),
    ({"urgency": {"learned": {"threshold": "high"}}}, "urgency.learned.threshold", "expected a number"),
    ({"triage": {"complaint_signals": {"group": {"tier": "big"}}}}, "triage.complaint_signals.group.tier",
     "expected one of major, urgent, got 'big'"),
    ({"referrals": [{"topics": ["户口"]}]}, "referrals[0].department", "missing (required)"),
    ({"referrals": [None]}, "referrals[0]", "expected a mapping"),
    ({"project": {"staff_chat_id": "-100123"}}, "project.staff_chat_id", "expected an integer"),
    ({"project": {"wechat_app_ids": "wx123"}}, "project.wechat_app_ids", "expected a list"),
    ({"company": {"cs_chat_id": 1.5}}, "company.cs_chat_id", "expected an integer"),
])
def test_a_wrong_type_is_refused(raw, key, problem):
    assert_names(refused(raw), key, problem)


@pytest.mark.parametrize("value,problem", [
    ("25:00", 'expected a time "HH:MM" (00:00-23:59), got \'25:00\''),
    ("08:60", "got '08:60'"),
    ("8.30", "got '8.30'"),
    ("morning", "got 'morning'"),
    (1290, "got 1290 (YAML reads an unquoted 21:30 as a number)"),
])
def test_a_bad_time_is_refused(value, problem):
    assert_names(refused({"follow_up": {"quiet_start": value}}), "follow_up.quiet_start", problem)


def test_an_unquoted_time_in_yaml_is_refused_with_the_reason():
    raw = yaml.safe_load("service_hours:\n  open: 08:00\n  close: 20:30\n")
    assert_names(refused(raw), "service_hours.close", "unquoted 20:30 as a number")


@pytest.mark.parametrize("value,problem", [
    ("Asia/Shangai", "unknown timezone 'Asia/Shangai' (did you mean Asia/Shanghai?)"),
    ("Asia", "unknown timezone 'Asia'"),
    ("../etc/passwd", "unknown timezone"),
    ("", "unknown timezone"),
    (8, "expected a timezone name"),
])
def test_a_bad_timezone_is_refused(value, problem):
    assert_names(refused({"project": {"timezone": value}}), "project.timezone", problem)


@pytest.mark.parametrize("raw,key", [
    ({"urgency": {"hazards": {"gas": {"cues": ["漏气", "煤气", "燃气", "(燃气|煤气"]}}}}, "urgency.hazards.gas.cues[3]"),
    ({"urgency": {"hazards": {"fire": {"look_alikes": ["火锅", "*火"]}}}}, "urgency.hazards.fire.look_alikes[1]"),
    ({"urgency": {"hazards": {"gas": {"together": [["煤气", "味"], ["燃气", "[味"]]}}}},
     "urgency.hazards.gas.together[1][1]"),
    ({"urgency": {"person_in_danger": {"cues": ["受伤)"]}}}, "urgency.person_in_danger.cues[0]"),
    ({"triage": {"complaint_signals": {"outside": {"cues": ["媒体", "(?<!x+)12345"]}}}},
     "triage.complaint_signals.outside.cues[1]"),
    ({"triage": {"our_repairs": {"never_done": ["没(人"]}}}, "triage.our_repairs.never_done[0]"),
])
def test_a_bad_regular_expression_is_refused_with_its_index(raw, key):
    assert_names(refused(raw), key, "bad regular expression: ")


def test_the_message_of_a_bad_regular_expression():
    error = refused({"urgency": {"hazards": {"gas": {"cues": ["a", "b", "c", "(x"]}}}})
    assert str(error) == (f"{FILE}: urgency.hazards.gas.cues[3]: bad regular expression: "
                          "missing ), unterminated subpattern at position 0")


def test_plain_word_lists_are_not_read_as_regular_expressions():
    check_rules({"urgency": {"negations": ["(没"], "hazards": {"water": {"calm": ["不急)"]}}}}, FILE)


@pytest.mark.parametrize("code,problem", [
    ("P2", "expected a project code of 1-32 characters from a-z, 0-9, _ and -, got 'P2'"),
    ("p 2", "got 'p 2'"), ("", "got ''"), ("a" * 33, "got 'aaaa"), ("小区", "got '小区'"), ("p2/../x", "got 'p2/../x'"),
    (7, "expected a string, got 7 (put it in quotes"),  # YAML reads an unquoted 7 as a number
])
def test_a_bad_project_code_is_refused(code, problem):
    assert_names(refused({"project": {"code": code}}), "project.code", problem)


def test_a_bad_default_project_is_refused():
    assert_names(refused({"company": {"default_project": "West Lake"}}), "company.default_project", "project code")


# --- what is accepted ------------------------------------------------------------------------


def test_the_registry_keys_are_accepted():
    check_rules({
        "company": {"name": "示例物业", "cs_chat_id": -1001, "default_project": "p1"},
        "project": {"code": "west-lake_2", "name": "西湖小区", "address": "杭州市西湖区1号", "timezone": "Asia/Shanghai",
                    "wechat_app_ids": ["wx0123456789abcdef"], "staff_chat_id": -1002, "head_chat_id": 42,
                    "company_cs_chat_id": -1003},
    }, FILE)
    check_rules({"project": {"code": "a" * 32}}, FILE)


def test_an_overlay_may_give_any_subset():
    check_rules({"sla": {"general_repair_hours": 12}}, FILE)
    check_rules({"facts": {"parcel_hold_days": 5, "new_fact": "x"}, "faq": {"new_topic": "{new_fact}"}}, FILE)
    check_rules({"urgency": {"hazards": {"gas": {"cues": ["漏气"]}}}}, FILE)


@pytest.mark.parametrize("raw", [
    {"sla": None, "triage": None, "urgency": None, "facts": None, "faq": None, "referrals": None, "project": None},
    {"follow_up": {"quiet_start": None, "quiet_end": None}},
    {"service_hours": {"open": None, "close": None, "phone": None}},
    {"project": {"name": None, "timezone": None}},
    {"urgency": {"hazards": {"gas": None}, "person_in_danger": None, "learned": {"examples": None, "advice": None}}},
    {"triage": {"complaint_signals": {"group": {"tier": None, "label": None, "cues": None}}}},
    {"wechat_templates": {"survey": {"template_id": None, "fields": None, "url": None}}},
    {"calendar": {"holiday_file": None, "holidays": None}},
    {"escalation": {"complaint_topics": {"噪音": None}}},
    {"referral_default": None},
])
def test_null_is_accepted_where_the_parser_uses_the_default(raw):
    check_rules(raw, FILE)
    parse_rules(raw)  # and the parser indeed copes with it


def test_the_keys_of_older_files_are_accepted():
    raw = {"sla": {"holidays": ["2026-10-01"], "working_days": [1, 2, 3, 4, 5, 6]},
           "triage": {"major_complaint_keywords": ["集体投诉"], "urgent_complaint_keywords": ["马上"]}}
    check_rules(raw, FILE)
    parse_rules(raw)


def test_dates_from_yaml_and_as_text_are_accepted():
    check_rules(yaml.safe_load("calendar:\n  holidays: [2026-10-01, '2026-10-02']\n  workdays: []\n"), FILE)


def test_error_attributes():
    error = refused({"sla": {"general_repair_hours": "abc"}})
    assert isinstance(error, ValueError)
    assert (error.file, error.key) == (FILE, "sla.general_repair_hours")
    assert error.problem == "expected an integer, got 'abc'"


# --- every key of default.yml, and every key the parser reads --------------------------------


def _mappings(node: Any, path: tuple[str, ...], dotted: str) -> Iterator[tuple[tuple[str, ...], str, dict]]:
    """Every mapping of the YAML tree: (its path of keys, list indices as '*'), its dotted key, itself."""
    if isinstance(node, dict):
        yield path, dotted, node
        for key, value in node.items():
            yield from _mappings(value, (*path, str(key)), f"{dotted}.{key}" if dotted else str(key))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _mappings(item, (*path, "*"), f"{dotted}[{index}]")


def _is_open(path: tuple[str, ...]) -> bool:
    return any(len(path) == len(pattern) and all(p in ("*", part) for p, part in zip(pattern, path))
               for pattern in OPEN_MAPS)


def _misspelt(key: str, siblings: dict) -> str:
    return next(candidate for candidate in (f"{key}s", f"{key}x", f"x{key}") if candidate not in siblings)


def test_a_misspelt_sibling_of_every_key_of_default_yml_is_refused(defaults):
    raw = copy.deepcopy(defaults)
    failures, checked, open_seen = [], 0, set()
    for path, dotted, mapping in list(_mappings(raw, (), "")):
        if _is_open(path):
            open_seen.add(tuple("*" if p.isdigit() else p for p in path))
        for key in list(mapping):
            wrong = _misspelt(str(key), mapping)
            mapping[wrong] = mapping[key]
            try:
                check_rules(raw, "default.yml")
            except RulesFileError as error:
                expected = f"{dotted}.{wrong}" if dotted else wrong
                if _is_open(path):
                    failures.append(f"{expected}: refused in an open map: {error}")
                elif error.key != expected or f"did you mean {key}?" not in str(error):
                    failures.append(f"{expected}: wrong refusal: {error}")
            else:
                if not _is_open(path):
                    failures.append(f"{dotted}.{wrong}: accepted")
            finally:
                del mapping[wrong]
            checked += 1
    assert not failures, "\n".join(failures)
    assert raw == defaults  # nothing left behind
    assert checked > 300
    assert {p for p in OPEN_MAPS if "*" not in p} <= {p for p in open_seen if "*" not in p}


def _map_keys(node: Any) -> set[str]:
    """Every fixed key of the schema, at any depth."""
    found: set[str] = set()
    for attribute in ("fields", "value", "item", "node"):
        child = getattr(node, attribute, None)
        if isinstance(child, dict):
            found |= set(child)
            for sub in child.values():
                found |= _map_keys(sub)
        elif child is not None:
            found |= _map_keys(child)
    return found


# Keys of the data files the rules point to (labelled urgency examples), not of rules files.
DATA_FILE_KEYS = {"descriptions", "text", "hazard"}


def test_the_schema_lists_every_key_the_parser_reads():
    modules = ["rules.py", "knowledge.py", "workdays.py", "company.py"]
    source = "".join((PROJECT_ROOT / "bot" / "core" / name).read_text(encoding="utf-8")
                     for name in modules if (PROJECT_ROOT / "bot" / "core" / name).exists())
    read = set(re.findall(r"""(?:\.get\(|\[)["']([a-z_]+)["']""", source))
    read |= {f"{tier}_complaint_keywords" for tier in rules_module.COMPLAINT_TIERS}  # read through an f-string
    missing = read - DATA_FILE_KEYS - _map_keys(SCHEMA)
    assert not missing, f"keys read by the parser but not in the schema: {sorted(missing)}"


def test_the_complaint_tiers_are_the_parsers():
    from bot.core import rules_schema

    assert rules_schema.COMPLAINT_TIERS == rules_module.COMPLAINT_TIERS


# --- merging ---------------------------------------------------------------------------------


def test_nested_dicts_merge_key_by_key():
    base = {"sla": {"general_repair_hours": 24, "major_complaint_hours": 4}, "flood": {"max_messages": 10}}
    merged = merge_rules(base, {"sla": {"general_repair_hours": 12}})
    assert merged == {"sla": {"general_repair_hours": 12, "major_complaint_hours": 4}, "flood": {"max_messages": 10}}


def test_lists_and_scalars_replace():
    base = {"urgency": {"negations": ["没有", "没"]}, "referrals": [{"department": "a"}, {"department": "b"}],
            "referral_default": "x"}
    overlay = {"urgency": {"negations": ["莫得"]}, "referrals": [{"department": "c"}], "referral_default": "y"}
    assert merge_rules(base, overlay) == overlay


def test_a_mapping_replaces_a_scalar_and_the_other_way():
    assert merge_rules({"a": 1, "b": {"c": 1}}, {"a": {"x": 1}, "b": 2}) == {"a": {"x": 1}, "b": 2}


def test_the_inputs_are_unchanged_and_the_result_shares_nothing():
    base = {"sla": {"general_repair_hours": 24}, "urgency": {"negations": ["没有"]}, "facts": {"a": "1"}}
    overlay = {"sla": {"major_complaint_hours": 2}, "facts": {"b": "2"}, "faq": {"t": "{b}"}}
    base_before, overlay_before = copy.deepcopy(base), copy.deepcopy(overlay)
    merged = merge_rules(base, overlay)
    merged["urgency"]["negations"].append("没")
    merged["faq"]["t"] = "changed"
    merged["sla"]["general_repair_hours"] = 1
    assert base == base_before
    assert overlay == overlay_before


def test_an_open_map_gains_a_key_and_keeps_the_others():
    base = {"facts": {"fee_per_m2": "2.30", "parcel_hold_days": "3"}, "urgency": {"hazards": {"gas": {}, "fire": {}}}}
    overlay = {"facts": {"parcel_hold_days": "5", "gym_hours": "06:00-22:00"}, "urgency": {"hazards": {"flood": {}}}}
    merged = merge_rules(base, overlay)
    assert merged["facts"] == {"fee_per_m2": "2.30", "parcel_hold_days": "5", "gym_hours": "06:00-22:00"}
    assert list(merged["urgency"]["hazards"]) == ["gas", "fire", "flood"]  # order: looked for in this order


def test_a_null_in_the_overlay_keeps_the_default():
    base = {"service_hours": {"phone": "0571-1", "open": "08:00"}, "sla": {"general_repair_hours": 24}}
    assert merge_rules(base, {"service_hours": {"phone": None}, "sla": None}) == base


def test_an_overlay_merged_over_the_defaults_parses(defaults):
    overlay = yaml.safe_load("""
project: {code: p2, name: 西湖小区}
sla: {general_repair_hours: 12}
facts: {parcel_hold_days: 5, gym_hours: "06:00-22:00"}
faq: {gym: "健身房开放时间 {gym_hours}。"}
urgency: {spellings: {燃起: 燃气}}
""")
    check_rules(overlay, FILE)
    merged = merge_rules(defaults, overlay)
    check_rules(merged, "merged")
    rules = parse_rules(merged)
    assert rules.name == "西湖小区"
    assert rules.sla.general_repair_hours == 12
    assert rules.sla.major_complaint_hours == 4  # from the defaults
    assert rules.knowledge.answer("gym") == "健身房开放时间 06:00-22:00。"
    assert "5 天" in (rules.knowledge.answer("parcel") or "")
    assert ("燃起", "燃气") in rules.urgency.spellings and ("然气", "燃气") in rules.urgency.spellings
