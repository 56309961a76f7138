"""Process settings, read from environment variables.

Business numbers (SLA hours, keywords) are per project and live in the project YAML
(see `bot.core.rules`); this module only holds how the processes find each other.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _default_database_url() -> str:
    return f"sqlite:///{PROJECT_ROOT / 'var' / 'wuye.db'}"


# `make run` is the newcomer's development stack: the WeChat simulator stands in for WeChat.
# These values are for that loopback setup only; outside development they are refused.
DEVELOPMENT_VALUES = {
    "WUYE_ENV": "development",
    "WECHAT_TOKEN": "dev-wechat-token",
    "WECHAT_APP_ID": "wxdevsimulator00000",
    "WECHAT_APP_SECRET": "dev-wechat-secret",
    "WECHAT_ENCODING_AES_KEY": "DevelopmentOnlyKeyForTheWeChatSimulator0123",
    # The demo staff member's API token (every role, every project; development only).
    "STAFF_API_TOKEN": "dev-staff-api-token",
    # The demo member's web-console password (login "demo"); set once, development only.
    "CONSOLE_DEMO_PASSWORD": "dev-console-password",
    "RASA_AUTH_TOKEN": "dev-rasa-token",
}

# What each production process cannot start without (the AES key is optional: plaintext-mode
# accounts exist; when set it must not be the development one). Rasa's HTTP API reads and
# rewrites any resident's conversation, so every process that calls it needs its token.
REQUIRED_IN_PRODUCTION = {
    "serve": ("wechat_token", "wechat_app_id", "wechat_app_secret", "rasa_auth_token"),
    "worker": ("wechat_app_id", "wechat_app_secret", "rasa_auth_token"),
}


@dataclass(frozen=True)
class Settings:
    database_url: str = field(default_factory=_default_database_url)
    # The company defaults; each project's overlay is a `*.yml` in `projects_dir` (default:
    # `projects/` beside the defaults). See bot.core.company.
    project_config: Path = PROJECT_ROOT / "project" / "default.yml"
    projects_dir: Path | None = None
    rasa_url: str = "http://127.0.0.1:5005"
    # Rasa runs with `--enable-api --auth-token`; every call to its HTTP API carries this.
    rasa_auth_token: str = ""
    action_port: int = 5055
    rasa_port: int = 5005
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8080
    # The staff API listens apart from the public WeChat listener: an internal port, or a
    # path behind the intranet reverse proxy, so publishing the WeChat port never publishes it.
    staff_host: str = "127.0.0.1"
    staff_port: int = 8081
    # The worker's /metrics and /healthz (bot.worker.http): an internal port too; 0: none.
    worker_metrics_host: str = "127.0.0.1"
    worker_metrics_port: int = 8082
    # `make run`'s processes (bot.app.balancer): 0 = every core (a Rasa process and an action
    # server per core, fewer Rasa when memory is short; two gateways); 1 = one process, no HAProxy.
    # Several run on internal loopback ports from these bases (base, base + 1, …) behind HAProxy,
    # which takes the public ports above. Workers: 1 unless asked (and 1 on SQLite).
    rasa_replicas: int = 0
    action_replicas: int = 0
    gateway_replicas: int = 0
    worker_replicas: int = 1
    rasa_replica_port: int = 15005
    action_replica_port: int = 15105
    gateway_replica_port: int = 18080
    staff_replica_port: int = 18180
    log_level: str = "INFO"
    # "development" enables the WeChat simulator; anything else is production.
    environment: str = "production"
    wechat_token: str = ""
    wechat_app_id: str = ""
    wechat_app_secret: str = ""
    wechat_encoding_aes_key: str = ""
    wechat_api_base_url: str = "https://api.weixin.qq.com"
    # WeChat's compatible mode during a migration to safe mode: plaintext pushes are taken
    # although an EncodingAESKey is set. Off unless WECHAT_ALLOW_PLAINTEXT=1.
    wechat_allow_plaintext: bool = False
    wechat_max_skew_seconds: int = 300
    # WeChat waits 5 s for a passive reply; answer within this budget or push later.
    passive_reply_budget: float = 4.0
    action_server_url: str = "http://127.0.0.1:5055"
    # How often messages that could not reach the assistant are retried.
    retry_interval: float = 5.0
    # Shared short-lived state of several gateway replicas (per-resident rate limits); empty:
    # this process's memory, right for one gateway.
    redis_url: str = ""
    # Rasa's SQL tracker store (SQLAlchemy URL), pruned and erased by the worker and the CLI;
    # empty: Rasa's in-memory store, reached through Rasa's HTTP API.
    tracker_store_url: str = ""
    # Development only: registered as the demo staff member's token (`make run`), so a
    # newcomer's scripts keep working. In production every person has their own tokens
    # (`python -m bot staff token`), and a set STAFF_API_TOKEN is refused (see below).
    staff_api_token: str = ""
    # Telegram staff bot: without a token there is no bot and escalations wait in the staff API.
    telegram_bot_token: str = ""
    telegram_api_base_url: str = "https://api.telegram.org"
    # The staff groups of projects whose file names none (a one-project deployment).
    staff_chat_id: int = 0
    project_head_chat_id: int = 0
    # Touched each round of their loops (processes without an HTTP side): a stale file says stuck,
    # to `make run`'s supervisor and to the Docker healthcheck (see bot.core.heartbeat).
    worker_heartbeat_file: Path = PROJECT_ROOT / "var" / "run" / "worker.heartbeat"
    staffbot_heartbeat_file: Path = PROJECT_ROOT / "var" / "run" / "staffbot.heartbeat"

    @property
    def is_development(self) -> bool:
        return self.environment == "development"

    def production_problems(self, process: str) -> list[str]:
        """Why `process` must not start outside development (empty or development secrets)."""
        if self.is_development:
            return []
        problems = []
        development = set(DEVELOPMENT_VALUES.values())
        for name in (*REQUIRED_IN_PRODUCTION.get(process, ()), "wechat_encoding_aes_key"):
            value, variable = getattr(self, name), name.upper()
            if not value and name != "wechat_encoding_aes_key":
                problems.append(f"{variable} is not set")
            elif value and value in development:
                problems.append(f"{variable} is the development value; set the real one")
        if self.staff_api_token:
            problems.append("STAFF_API_TOKEN is for development only; give each person a token "
                            "(python -m bot staff token)")
        return problems

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Settings":
        env = dict(os.environ if env is None else env)
        defaults = cls()
        return cls(
            database_url=env.get("DATABASE_URL") or defaults.database_url,
            project_config=Path(env.get("PROJECT_CONFIG") or defaults.project_config),
            projects_dir=Path(env["PROJECTS_DIR"]) if env.get("PROJECTS_DIR") else None,
            rasa_url=env.get("RASA_URL") or defaults.rasa_url,
            rasa_auth_token=env.get("RASA_AUTH_TOKEN", ""),
            action_port=int(env.get("ACTION_PORT") or defaults.action_port),
            rasa_port=int(env.get("RASA_PORT") or defaults.rasa_port),
            gateway_host=env.get("GATEWAY_HOST") or defaults.gateway_host,
            gateway_port=int(env.get("GATEWAY_PORT") or defaults.gateway_port),
            staff_host=env.get("STAFF_HOST") or defaults.staff_host,
            staff_port=int(env.get("STAFF_PORT") or defaults.staff_port),
            worker_metrics_host=env.get("WORKER_METRICS_HOST") or defaults.worker_metrics_host,
            # Unset: the default port; set empty or 0: no listener.
            worker_metrics_port=int(env["WORKER_METRICS_PORT"] or 0) if "WORKER_METRICS_PORT" in env
            else defaults.worker_metrics_port,
            rasa_replicas=int(env.get("RASA_REPLICAS") or 0),
            action_replicas=int(env.get("ACTION_REPLICAS") or 0),
            gateway_replicas=int(env.get("GATEWAY_REPLICAS") or 0),
            worker_replicas=int(env.get("WORKER_REPLICAS") or 1),
            rasa_replica_port=int(env.get("RASA_REPLICA_PORT") or defaults.rasa_replica_port),
            action_replica_port=int(env.get("ACTION_REPLICA_PORT") or defaults.action_replica_port),
            gateway_replica_port=int(env.get("GATEWAY_REPLICA_PORT") or defaults.gateway_replica_port),
            staff_replica_port=int(env.get("STAFF_REPLICA_PORT") or defaults.staff_replica_port),
            log_level=env.get("LOG_LEVEL") or defaults.log_level,
            environment=env.get("WUYE_ENV") or defaults.environment,
            wechat_token=env.get("WECHAT_TOKEN", ""),
            wechat_app_id=env.get("WECHAT_APP_ID", ""),
            wechat_app_secret=env.get("WECHAT_APP_SECRET", ""),
            wechat_encoding_aes_key=env.get("WECHAT_ENCODING_AES_KEY", ""),
            wechat_api_base_url=(env.get("WECHAT_API_BASE_URL") or defaults.wechat_api_base_url).rstrip("/"),
            wechat_allow_plaintext=(env.get("WECHAT_ALLOW_PLAINTEXT") or "").lower() in ("1", "true", "yes"),
            wechat_max_skew_seconds=int(env.get("WECHAT_MAX_SKEW_SECONDS") or defaults.wechat_max_skew_seconds),
            passive_reply_budget=float(env.get("PASSIVE_REPLY_BUDGET") or defaults.passive_reply_budget),
            action_server_url=(env.get("ACTION_SERVER_URL") or defaults.action_server_url).rstrip("/"),
            retry_interval=float(env.get("RETRY_INTERVAL") or defaults.retry_interval),
            redis_url=env.get("REDIS_URL", ""),
            tracker_store_url=env.get("TRACKER_STORE_URL", ""),
            staff_api_token=env.get("STAFF_API_TOKEN", ""),
            telegram_bot_token=env.get("TELEGRAM_BOT_TOKEN", ""),
            telegram_api_base_url=(env.get("TELEGRAM_API_BASE_URL") or defaults.telegram_api_base_url).rstrip("/"),
            staff_chat_id=int(env.get("STAFF_CHAT_ID") or 0),
            project_head_chat_id=int(env.get("PROJECT_HEAD_CHAT_ID") or 0),
            worker_heartbeat_file=Path(env.get("WORKER_HEARTBEAT_FILE") or defaults.worker_heartbeat_file),
            staffbot_heartbeat_file=Path(env.get("STAFFBOT_HEARTBEAT_FILE") or defaults.staffbot_heartbeat_file),
        )
