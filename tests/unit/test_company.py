"""The project registry: company defaults overlaid by one file per project, checked at load."""
from __future__ import annotations

from pathlib import Path

import pytest

from bot.core.company import Company, UnknownProject, load_company
from bot.core.rules_schema import RulesFileError
from bot.settings import PROJECT_ROOT

DEFAULTS = PROJECT_ROOT / "project" / "default.yml"
TEST_PROJECTS = PROJECT_ROOT / "tests" / "projects"


@pytest.fixture(scope="module")
def company() -> Company:
    return load_company(DEFAULTS, TEST_PROJECTS)


def test_each_project_gets_the_defaults_overlaid_by_its_own_file(company):
    assert company.codes == ("default", "binjiang")
    assert company.default_code == "default"  # the first file, unless the company names one
    default, binjiang = company.rules("default"), company.rules("binjiang")
    assert (default.name, binjiang.name) == ("示例小区", "滨江花园")
    # What the project file sets...
    assert binjiang.sla.general_repair_hours == 12 and binjiang.sla.major_complaint_hours == 2
    assert (binjiang.service_hours.open.hour, binjiang.service_hours.close.hour) == (9, 18)
    assert binjiang.knowledge.facts["fee_per_m2"] == "3.50"
    assert binjiang.knowledge.facts["office_location"] == "滨江花园 1 号楼大堂"
    assert (binjiang.staff_chat_id, binjiang.head_chat_id) == (-2001, -2002)
    # ...and what it leaves to the company: the defaults, key by key.
    assert binjiang.sla.urgent_complaint_hours == default.sla.urgent_complaint_hours == 24
    assert binjiang.knowledge.facts["fee_billing"] == default.knowledge.facts["fee_billing"]
    assert binjiang.urgency.hazards == default.urgency.hazards
    assert default.sla.general_repair_hours == 24 and default.knowledge.facts["fee_per_m2"] == "2.30"
    # Facts the answers derive: the project's own name and desk.
    assert binjiang.knowledge.facts["project_name"] == "滨江花园"
    assert binjiang.knowledge.facts["service_phone"] == "0571-6666 1234"
    assert binjiang.knowledge.facts["office_open"] == "09:00"


def test_without_project_files_the_defaults_are_the_one_project(tmp_path):
    single = load_company(DEFAULTS, tmp_path / "none")
    assert single.codes == ("default",) and single.default.name == "示例小区"


def test_an_unknown_project_is_refused_by_name(company):
    with pytest.raises(UnknownProject, match="nowhere"):
        company.rules("nowhere")
    assert not company.knows("nowhere") and not company.knows("") and company.knows("binjiang")


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(("text", "key", "problem"), [
    ("project: {code: p2}\nsla: {genral_repair_hours: 12}\n", "sla.genral_repair_hours", "did you mean"),
    ("project: {code: p2}\nsla: {general_repair_hours: twelve}\n", "sla.general_repair_hours", "integer"),
    ("project: {code: p2}\nservice_hours: {open: 25:99}\n", "service_hours.open", ""),
    ("project: {code: p2}\nmystery: 1\n", "mystery", "unknown key"),
    ("project: {name: 无编号}\n", "project.code", "must name its project code"),
    ("project: {code: P 2}\n", "project.code", ""),
])
def test_a_wrong_project_file_is_refused_with_the_file_and_the_key(tmp_path, text, key, problem):
    bad = _write(tmp_path / "projects", "p2.yml", text)
    with pytest.raises(RulesFileError) as refused:
        load_company(DEFAULTS, bad.parent)
    message = str(refused.value)
    assert str(bad) in message and key in message and problem in message


def test_two_files_may_not_claim_one_project(tmp_path):
    folder = tmp_path / "projects"
    _write(folder, "a.yml", "project: {code: same}\n")
    _write(folder, "b.yml", "project: {code: same, name: 另一个}\n")
    with pytest.raises(RulesFileError, match="defined twice"):
        load_company(DEFAULTS, folder)


def test_the_company_may_name_its_default_project(tmp_path):
    defaults = _write(tmp_path, "default.yml", DEFAULTS.read_text(encoding="utf-8").replace(
        "default_project: ~", "default_project: p2"))
    folder = tmp_path / "projects"
    _write(folder, "a.yml", "project: {code: p1}\n")
    _write(folder, "b.yml", "project: {code: p2}\n")
    assert load_company(defaults, folder).default_code == "p2"
    _write(tmp_path, "default.yml", DEFAULTS.read_text(encoding="utf-8").replace(
        "default_project: ~", "default_project: gone"))
    with pytest.raises(RulesFileError, match="company.default_project"):
        load_company(defaults, folder)


def test_projects_are_found_by_the_official_account_they_are_served_through(tmp_path):
    folder = tmp_path / "projects"
    _write(folder, "a.yml", "project: {code: north, wechat_app_ids: [wxNorth]}\n")
    _write(folder, "b.yml", "project: {code: south, wechat_app_ids: [wxSouth]}\n")
    _write(folder, "c.yml", "project: {code: anywhere}\n")
    registry = load_company(DEFAULTS, folder)
    assert [p.code for p in registry.served_through("wxNorth")] == ["north", "anywhere"]


def test_the_shipped_project_files_load(tmp_path):
    """`python -m bot projects check` on what the repository ships (and the test projects)."""
    import subprocess
    import sys

    for env in ({}, {"PROJECTS_DIR": str(TEST_PROJECTS)}):
        done = subprocess.run([sys.executable, "-m", "bot", "projects", "check"], cwd=PROJECT_ROOT,
                              env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    listed = subprocess.run([sys.executable, "-m", "bot", "projects", "list"], cwd=PROJECT_ROOT,
                            env={"PATH": "/usr/bin:/bin", "PROJECTS_DIR": str(TEST_PROJECTS)},
                            capture_output=True, text=True, timeout=120)
    assert "binjiang" in listed.stdout and "滨江花园" in listed.stdout and "-2001" in listed.stdout
    bad = _write(tmp_path / "projects", "p2.yml", "project: {code: p2}\nsla: {genral_repair_hours: 1}\n")
    refused = subprocess.run([sys.executable, "-m", "bot", "projects", "check"], cwd=PROJECT_ROOT,
                             env={"PATH": "/usr/bin:/bin", "PROJECTS_DIR": str(bad.parent)},
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and "sla.genral_repair_hours" in refused.stderr
