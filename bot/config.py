"""Process settings, read from environment variables.

Business numbers (SLA hours, keywords) are per project and live in the project YAML
(see `bot.rules`); this module only holds how the processes find each other.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _default_database_url() -> str:
    return f"sqlite:///{PROJECT_ROOT / 'var' / 'wuye.db'}"


@dataclass(frozen=True)
class Settings:
    database_url: str = field(default_factory=_default_database_url)
    project_config: Path = PROJECT_ROOT / "project" / "default.yml"
    rasa_url: str = "http://127.0.0.1:5005"
    action_port: int = 5055
    rasa_port: int = 5005
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8080
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Settings":
        env = dict(os.environ if env is None else env)
        defaults = cls()
        return cls(
            database_url=env.get("DATABASE_URL") or defaults.database_url,
            project_config=Path(env.get("PROJECT_CONFIG") or defaults.project_config),
            rasa_url=env.get("RASA_URL") or defaults.rasa_url,
            action_port=int(env.get("ACTION_PORT") or defaults.action_port),
            rasa_port=int(env.get("RASA_PORT") or defaults.rasa_port),
            gateway_host=env.get("GATEWAY_HOST") or defaults.gateway_host,
            gateway_port=int(env.get("GATEWAY_PORT") or defaults.gateway_port),
            log_level=env.get("LOG_LEVEL") or defaults.log_level,
        )
