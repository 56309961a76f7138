"""The package's layers, read from the imports of every module.

    bot.core, bot.settings   pure domain / process settings: import nothing of ours
    bot.db                   storage
    bot.cases                use cases (reach the outside through bot.cases.ports)
    adapters                 bot.channels.<name>, bot.staff_api, bot.console, bot.worker, bot.assistant, actions
    bot.app, bot.__main__    wiring and the command line

Imports go down only; an adapter never imports another adapter (a channel never imports
another channel); bot.nlu and bot.rasa_run (assistant runtime) import bot.core only;
no cycle between modules, counting imports inside functions and under TYPE_CHECKING too;
a function-local import of our own code is allowed only in bot.app (lazy CLI start-up).
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bot", "actions")

# Third-party packages the pure core may use (reading YAML, Chinese text, the holiday calendar).
CORE_THIRD_PARTY = {"yaml", "opencc", "chinese_calendar"}


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported module (ours) or top-level package (third-party)
    path: Path
    line: int
    local: bool  # inside a function or class body


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path) -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if "migrations" in path.parts and "versions" in path.parts:
                continue  # Alembic revisions: frozen history, plain SQLAlchemy
            found[module_name(path, root)] = path
    return found


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    """The module of ours that `name` refers to (a module, or a name inside one)."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def imports(root: Path) -> list[Import]:
    known = modules(root)
    found: list[Import] = []
    for source, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        is_package = path.name == "__init__.py"
        local_lines = {node.lineno for scope in ast.walk(tree)
                       if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                       for node in ast.walk(scope) if isinstance(node, (ast.Import, ast.ImportFrom))}
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    package = source.split(".") if is_package else source.split(".")[:-1]
                    package = package[:len(package) - node.level + 1]
                    base = ".".join(package + ([base] if base else []))
                # `from bot.cases import alerts` imports the module bot.cases.alerts.
                names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
            else:
                continue
            for name in names:
                target = _resolve(name, known) or name.split(".")[0]
                found.append(Import(source, target, path, node.lineno, node.lineno in local_lines))
    return found


def layer(module: str) -> tuple[int, str]:
    """(rank, component) of a module of ours; adapters share a rank, each is its own component."""
    parts = module.split(".")
    if module == "bot":
        return 0, "bot"
    if module == "bot.settings" or parts[:2] == ["bot", "core"]:
        return 0, "core"
    if parts[:2] == ["bot", "db"]:
        return 1, "db"
    if parts[:2] == ["bot", "cases"]:
        return 2, "cases"
    # bot.rasa_run starts Rasa in the assistant runtime: held to the Rasa components' rule.
    if parts[:2] == ["bot", "nlu"] or module == "bot.rasa_run":
        return 3, "nlu"
    if parts[:2] == ["bot", "channels"]:
        return 3, ".".join(parts[:3])
    if parts[0] == "actions":
        return 3, "actions"
    if parts[:2] in (["bot", "staff_api"], ["bot", "worker"], ["bot", "assistant"], ["bot", "console"]):
        return 3, ".".join(parts[:2])
    if parts[:2] == ["bot", "app"] or module == "bot.__main__":
        return 4, "app"
    raise AssertionError(f"{module}: not in any layer; add it to tests/unit/test_layers.py")


def violations(root: Path) -> list[str]:
    known = modules(root)
    problems = []
    graph: dict[str, list[Import]] = {}
    for imp in imports(root):
        where = f"{imp.path.relative_to(root)}:{imp.line}"
        ours = imp.target in known
        source_rank, source_part = layer(imp.source)
        if not ours:
            if source_part == "core" and imp.source != "bot.settings" and imp.target not in CORE_THIRD_PARTY \
                    and imp.target not in _STDLIB:
                problems.append(f"{where}: {imp.source} imports {imp.target}: the core is pure "
                                f"(allowed third-party: {', '.join(sorted(CORE_THIRD_PARTY))})")
            continue
        graph.setdefault(imp.source, []).append(imp)
        if imp.target == imp.source or imp.target == "bot":
            continue
        target_rank, target_part = layer(imp.target)
        if source_part == target_part:
            pass
        elif source_part == "nlu":
            if target_part != "core" or imp.target == "bot.settings":
                problems.append(f"{where}: {imp.source} imports {imp.target}: Rasa components import bot.core only")
        elif target_rank > source_rank:
            problems.append(f"{where}: {imp.source} imports {imp.target}: upward ({source_part} → {target_part})")
        elif target_rank == source_rank:
            problems.append(f"{where}: {imp.source} imports {imp.target}: sideways between adapters "
                            f"({source_part} → {target_part})")
        if imp.local and source_part != "app":
            problems.append(f"{where}: {imp.source} imports {imp.target} inside a function: import at the top "
                            "(a local import must not hide a cycle)")
    problems.extend(_cycles(graph, root))
    return problems


def _cycles(graph: dict[str, list[Import]], root: Path) -> list[str]:
    """Every strongly connected group of modules, reported with the imports that close it."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for edge in graph.get(node, []):
            if edge.target == node:
                continue
            if edge.target not in index:
                visit(edge.target)
                low[node] = min(low[node], low[edge.target])
            elif edge.target in on_stack:
                low[node] = min(low[node], index[edge.target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    problems = []
    for group in groups:
        members = set(group)
        edges = list(dict.fromkeys(f"{e.path.relative_to(root)}:{e.line} ({e.source} → {e.target})"
                                   for m in sorted(group) for e in graph.get(m, [])
                                   if e.target in members and e.target != m))
        problems.append(f"import cycle between {', '.join(sorted(group))}: " + "; ".join(edges))
    return problems


_STDLIB = {
    "__future__", "abc", "argparse", "asyncio", "bisect", "calendar", "collections", "contextlib", "copy", "csv",
    "dataclasses", "datetime", "decimal", "enum", "fractions", "functools", "hashlib", "hmac", "html", "itertools",
    "json", "logging", "math", "operator", "os", "pathlib", "random", "re", "statistics", "string", "sys", "textwrap",
    "difflib", "time", "types", "typing", "unicodedata", "uuid", "zoneinfo",
}


# --- the tests --------------------------------------------------------------------------


def test_the_package_keeps_its_layers():
    problems = violations(PROJECT_ROOT)
    assert not problems, "\n".join(problems)


def test_every_module_is_in_a_layer():
    for module in modules(PROJECT_ROOT):
        layer(module)


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for package in ("bot", "actions"):
        (tmp_path / package).mkdir(exist_ok=True)
    return tmp_path


def test_an_upward_import_is_named_with_its_line(tmp_path: Path):
    root = _tree(tmp_path, {
        "bot/__init__.py": "", "bot/core/__init__.py": "", "bot/cases/__init__.py": "",
        "bot/core/sla.py": '"""Deadlines."""\nimport datetime\n\nfrom bot.cases import tickets\n',
        "bot/cases/tickets.py": "from bot.core import sla\n",
    })
    problems = violations(root)
    assert any(p.startswith("bot/core/sla.py:4: bot.core.sla imports bot.cases.tickets: upward") for p in problems)
    assert any("import cycle between bot.cases.tickets, bot.core.sla" in p for p in problems)


def test_sideways_local_and_impure_imports_are_refused(tmp_path: Path):
    root = _tree(tmp_path, {
        "bot/__init__.py": "", "bot/core/__init__.py": "", "bot/channels/__init__.py": "",
        "bot/channels/wechat/__init__.py": "", "bot/channels/telegram/__init__.py": "",
        "bot/channels/wechat/api.py": "import aiohttp\n",
        "bot/channels/telegram/app.py": "def post():\n    from bot.channels.wechat import api\n",
        "bot/core/rules.py": "import sqlalchemy\n",
        "bot/nlu/__init__.py": "", "bot/nlu/blend.py": "from bot.channels.wechat import api\n",
    })
    problems = "\n".join(violations(root))
    assert "bot/channels/telegram/app.py:2: bot.channels.telegram.app imports bot.channels.wechat.api: sideways" \
        in problems
    assert "bot/channels/telegram/app.py:2: bot.channels.telegram.app imports bot.channels.wechat.api inside a " \
           "function" in problems
    assert "bot/core/rules.py:1: bot.core.rules imports sqlalchemy: the core is pure" in problems
    assert "bot/nlu/blend.py:1: bot.nlu.blend imports bot.channels.wechat.api: Rasa components import bot.core " \
           "only" in problems
