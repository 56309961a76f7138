"""`python -m bot.rasa_run run …` is `python -m rasa run …` (same arguments, same server), without
Rasa re-checking a constant JSON schema at every custom-action call. Runs in the assistant runtime.

Rasa 3.6 checks each action-server response with `jsonschema.validate(response, schema)`, and
`validate` first checks the schema itself against the JSON Schema meta-schema (Draft 2020-12 in
jsonschema 4.17, whose $dynamicRef resolution is slow): 20–45 ms of CPU per custom-action call,
the largest single part of a form turn and more than the whole NLU pipeline (docs/profile.md).
The schema is a constant, so here it is checked once, and each response is validated by one
prepared validator: the same check, the same errors, the same message.

Not a training input (bot.app.model_cache): the model does not depend on how Rasa is started.
"""
from __future__ import annotations

import logging
from typing import Any, Dict

log = logging.getLogger(__name__)

# The Rasa releases whose RemoteAction._validate_action_result this replaces line for line.
SUPPORTED_RASA = "3.6."


def install() -> bool:
    """Replace RemoteAction's response check; False (Rasa left as it is) on another Rasa release."""
    import jsonschema.exceptions
    import jsonschema.validators
    from rasa.core.actions import action
    from rasa.version import __version__

    if not __version__.startswith(SUPPORTED_RASA) or not hasattr(action.RemoteAction, "_validate_action_result"):
        log.warning("Rasa %s: its action-response check is left as it is (bot.rasa_run knows %sx)",
                    __version__, SUPPORTED_RASA)
        return False
    schema = action.RemoteAction.action_response_format_spec()
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)

    def _validate_action_result(self: Any, result: Dict[str, Any]) -> bool:
        error = jsonschema.exceptions.best_match(validator.iter_errors(result))
        if error is None:
            return True
        # Rasa's own message (rasa/core/actions/action.py, RemoteAction._validate_action_result).
        error.message += (
            f". Failed to validate Action server response from API, "
            f"make sure your response from the Action endpoint is valid. "
            f"For more information about the format visit "
            f"{action.DOCS_BASE_URL}/custom-actions"
        )
        raise error

    action.RemoteAction._validate_action_result = _validate_action_result
    return True


def main() -> None:
    install()
    from rasa.__main__ import main as rasa_main

    rasa_main()


if __name__ == "__main__":
    main()
