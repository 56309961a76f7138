"""Process settings: Rasa's auth token, staff tokens and the staff listener, as production reads them."""
from __future__ import annotations

import pytest

from bot.app.stack import MissingRasaToken, development_env, shown_secret, start_rasa
from bot.settings import DEVELOPMENT_VALUES as DEV
from bot.settings import Settings

# Stand-ins for a real deployment's secrets (none of them the development ones).
# No staff token among them: in production each person has their own (`python -m bot staff token`).
REAL = {"WECHAT_TOKEN": "prod-token-7f3a", "WECHAT_APP_ID": "wxprod0000000001", "WECHAT_APP_SECRET": "prod-secret-91c2",
        "RASA_AUTH_TOKEN": "prod-rasa-3e9c"}


@pytest.mark.parametrize("process", ["serve", "worker"])
def test_production_needs_a_real_rasa_token_for_every_process_that_calls_rasa(process):
    assert Settings.from_env(REAL).production_problems(process) == []
    assert Settings.from_env(dict(REAL, RASA_AUTH_TOKEN="")).production_problems(process) == [
        "RASA_AUTH_TOKEN is not set"]
    assert Settings.from_env(dict(REAL, RASA_AUTH_TOKEN=DEV["RASA_AUTH_TOKEN"])).production_problems(process) == [
        "RASA_AUTH_TOKEN is the development value; set the real one"]


@pytest.mark.parametrize("process", ["serve", "worker"])
@pytest.mark.parametrize("token", ["prod-agent-5d1e-long-enough", DEV["STAFF_API_TOKEN"]])
def test_production_refuses_a_shared_staff_token(process, token):
    """STAFF_API_TOKEN is the development demo member's: in production, set at all, it is refused."""
    problems = Settings.from_env(dict(REAL, STAFF_API_TOKEN=token)).production_problems(process)
    assert problems == ["STAFF_API_TOKEN is for development only; give each person a token "
                        "(python -m bot staff token)"]


def test_shared_manager_tokens_and_staff_user_lists_are_gone():
    """Roles and projects are the staff directory's now: the old variables mean nothing."""
    settings = Settings.from_env(dict(REAL, STAFF_API_MANAGER_TOKEN="prod-manager-a8b4", STAFF_USER_IDS="1001,1002"))
    assert settings.production_problems("serve") == []
    assert not hasattr(settings, "staff_api_manager_token") and not hasattr(settings, "staff_user_ids")
    assert "STAFF_API_MANAGER_TOKEN" not in DEV and "STAFF_API_TOKEN" in DEV


def test_development_has_its_own_rasa_token(monkeypatch):
    monkeypatch.delenv("WUYE_ENV", raising=False)
    monkeypatch.delenv("RASA_AUTH_TOKEN", raising=False)
    env = development_env(Settings())
    assert env["RASA_AUTH_TOKEN"] == DEV["RASA_AUTH_TOKEN"]
    assert Settings.from_env(env).rasa_auth_token == DEV["RASA_AUTH_TOKEN"]


def test_rasa_is_never_started_without_a_token(tmp_path):
    env = {"PATH": "/usr/bin"}
    with pytest.raises(MissingRasaToken, match="RASA_AUTH_TOKEN"):
        start_rasa(tmp_path / "model.tar.gz", 1, tmp_path / "endpoints.yml", env)


def test_make_run_prints_only_development_secrets():
    assert shown_secret({"RASA_AUTH_TOKEN": DEV["RASA_AUTH_TOKEN"]}, "RASA_AUTH_TOKEN") == DEV["RASA_AUTH_TOKEN"]
    assert shown_secret({"RASA_AUTH_TOKEN": "prod-rasa-3e9c"}, "RASA_AUTH_TOKEN") == "$RASA_AUTH_TOKEN"
    assert shown_secret({}, "STAFF_API_TOKEN") == "$STAFF_API_TOKEN"


def test_the_staff_listener_is_apart_from_the_public_one_and_internal_by_default():
    defaults = Settings.from_env({})
    assert (defaults.staff_host, defaults.staff_port) == ("127.0.0.1", 8081)
    assert defaults.staff_port != defaults.gateway_port
    moved = Settings.from_env({"STAFF_HOST": "10.0.0.5", "STAFF_PORT": "9090"})
    assert (moved.staff_host, moved.staff_port) == ("10.0.0.5", 9090)
