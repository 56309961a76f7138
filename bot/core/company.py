"""The company's project registry: every project (小区) and the rules it runs on.

Rules are layered: the company defaults (`project/default.yml`) overlaid by one file per
project (`project/projects/<code>.yml`: dicts merge key by key, lists and scalars replace).
Both are checked key by key at load (bot.core.rules_schema): an unknown key or a wrong
type stops the load with the file and the key named. A company without project files is
one project, the defaults themselves. Paths inside any file (holidays, urgency examples)
are relative to the defaults file's folder.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import yaml

from bot.core.rules import ProjectRules, parse_rules
from bot.core.rules_schema import RulesFileError, check_rules, merge_rules


class UnknownProject(LookupError):
    """A code that names no project of the registry (a QR code, a roster row, a request)."""

    def __init__(self, code: str) -> None:
        super().__init__(f"no project {code!r} in the registry")
        self.code = code


@dataclass(frozen=True)
class Company:
    name: str
    projects: Mapping[str, ProjectRules]
    default_code: str
    # The company customer-service department's chat: major and group complaints reach it.
    cs_chat_id: int = 0
    files: tuple[Path, ...] = field(default=(), compare=False)

    @classmethod
    def of(cls, *projects: ProjectRules, cs_chat_id: int = 0) -> "Company":
        """A registry of these projects, the first the default (tests, tools, one-project setups)."""
        return cls(name="", projects={p.code: p for p in projects}, default_code=projects[0].code,
                   cs_chat_id=cs_chat_id)

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(self.projects)

    @property
    def default(self) -> ProjectRules:
        return self.projects[self.default_code]

    def knows(self, code: str | None) -> bool:
        return bool(code) and code in self.projects

    def rules(self, code: str | None = None) -> ProjectRules:
        """The rules of project `code` (the default project for None); UnknownProject otherwise."""
        if code is None:
            return self.default
        try:
            return self.projects[code]
        except KeyError:
            raise UnknownProject(code) from None

    def served_through(self, app_id: str) -> tuple[ProjectRules, ...]:
        """The projects whose residents write to this official account (those naming no account: any)."""
        return tuple(p for p in self.projects.values() if not p.wechat_app_ids or app_id in p.wechat_app_ids)


def _read(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise RulesFileError(str(path), "", f"not valid YAML: {exc}") from exc
    raw = {} if raw is None else raw
    check_rules(raw, str(path))
    return raw


def company_from(defaults: dict[str, Any], overlays: Mapping[str, dict[str, Any]], base_dir: Path | None,
                 files: tuple[Path, ...] = ()) -> Company:
    """The registry from already-read files: `overlays` maps a file name to its contents."""
    company = defaults.get("company") or {}
    projects: dict[str, ProjectRules] = {}
    if not overlays:
        single = parse_rules(defaults, base_dir)
        projects[single.code] = single
    for file, overlay in overlays.items():
        code = (overlay.get("project") or {}).get("code")
        if not code:
            raise RulesFileError(file, "project.code", "a project file must name its project code")
        if code in projects:
            raise RulesFileError(file, "project.code", f"project {code!r} is defined twice")
        projects[code] = parse_rules(merge_rules(defaults, overlay), base_dir)
    default_code = str(company.get("default_project") or next(iter(projects)))
    if default_code not in projects:
        raise RulesFileError(str(files[0]) if files else "defaults", "company.default_project",
                             f"{default_code!r} is not one of the projects {sorted(projects)}")
    return Company(name=str(company.get("name") or ""), projects=projects, default_code=default_code,
                   cs_chat_id=int(company.get("cs_chat_id") or 0), files=files)


def load_company(defaults_path: Path, projects_dir: Path | None = None) -> Company:
    """Read and check the defaults and every `*.yml` in `projects_dir` (default: `projects/`
    beside the defaults), in file-name order."""
    projects_dir = projects_dir if projects_dir is not None else defaults_path.parent / "projects"
    defaults = _read(defaults_path)
    paths = sorted(projects_dir.glob("*.yml")) if projects_dir.is_dir() else []
    overlays = {str(path): _read(path) for path in paths}
    return company_from(defaults, overlays, defaults_path.parent, (defaults_path, *paths))


@lru_cache(maxsize=4)
def cached_company(defaults_path: Path, projects_dir: Path | None = None) -> Company:
    """One registry per process and configuration; `cached_company.cache_clear()` reloads."""
    return load_company(defaults_path, projects_dir)
