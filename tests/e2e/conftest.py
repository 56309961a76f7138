"""Fixtures of the service runtime's tests: databases (SQLite, PostgreSQL), rules, the live stack."""
from tests.fixtures import *  # noqa: F401,F403


def pytest_sessionfinish(session, exitstatus):  # type: ignore[no-untyped-def]
    """How long the assistant's replies are (a phone screen holds about 80 characters)."""
    from bot.settings import PROJECT_ROOT
    from tests.live import REPLIES

    if not REPLIES:
        return
    lengths = sorted(len(text) for text in REPLIES)

    def share(limit: int) -> str:
        return f"{sum(n <= limit for n in lengths) / len(lengths):.0%}"

    longest = sorted(set(REPLIES), key=len, reverse=True)[:5]
    report = "\n".join([
        "# Reply lengths in the e2e tests", "",
        f"{len(lengths)} replies: median {lengths[len(lengths) // 2]} characters, "
        f"90th percentile {lengths[int(len(lengths) * 0.9)]}, longest {lengths[-1]}.",
        f"At most 80 characters: {share(80)}; at most 120: {share(120)}; at most 200: {share(200)}.", "",
        "Longest:", *[f"- {len(t)}: " + t[:40].replace("\n", " / ") + "…" for t in longest], ""])
    out = PROJECT_ROOT / "results" / "reply-lengths.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(report, encoding="utf-8")
