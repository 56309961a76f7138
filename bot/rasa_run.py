"""`python -m bot.rasa_run run …` is `python -m rasa run …` (same arguments, same server), without
Rasa re-checking a constant JSON schema at every custom-action call. Runs in the assistant runtime.

Rasa 3.6 checks each action-server response with `jsonschema.validate(response, schema)`, and
`validate` first checks the schema itself against the JSON Schema meta-schema (Draft 2020-12 in
jsonschema 4.17, whose $dynamicRef resolution is slow): 20–45 ms of CPU per custom-action call,
the largest single part of a form turn and more than the whole NLU pipeline (docs/profile.md).
The schema is a constant, so here it is checked once, and each response is validated by one
prepared validator: the same check, the same errors, the same message.

Two more changes, for when the tracker store (PostgreSQL) is briefly unreachable
(tests/e2e/test_e2e_faults.py restarts it under load):

- Rasa wraps the tracker store in a FailSafeTrackerStore that, on an error, carries on with an
  empty in-memory tracker: the resident's message is then answered out of context (a room number
  alone gets 没明白) and the turn never reaches the store (when saving, Rasa only writes the events
  past those already stored, and an empty tracker has none past them). Here an error is logged and
  raised: the turn fails instead.
- Rasa's REST channel answers a failed turn with HTTP 200 and whatever the bot had said so far.
  Here a failed turn answers nothing (200, an empty list, as when the lock store is down), and
  the error is logged without the frame locals Rasa's own log adds (they hold the sender's id);
  Rasa's other exception logs lose their frame locals too.
  The gateway then reads the tracker, finds no turn of the message, and asks again once the store
  is back (bot/assistant/client.py, `_check_turn_taken`).

Not a training input (bot.app.model_cache): the model does not depend on how Rasa is started.
"""
from __future__ import annotations

import logging
from typing import Any, Dict

log = logging.getLogger("bot.rasa_run")  # also when run as __main__

# The Rasa releases whose RemoteAction._validate_action_result this replaces line for line.
SUPPORTED_RASA = "3.6."


def install() -> bool:
    """Replace RemoteAction's response check, the tracker store's in-memory fallback and the REST
    channel's answer to a failed turn; False (Rasa left as it is) on another Rasa release."""
    import jsonschema.exceptions
    import jsonschema.validators
    from rasa.core.actions import action
    from rasa.version import __version__

    if not __version__.startswith(SUPPORTED_RASA) or not hasattr(action.RemoteAction, "_validate_action_result"):
        log.warning("Rasa %s: left as it is (bot.rasa_run knows %sx)",
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
    _fail_turns_when_the_tracker_store_fails()
    _tracebacks_without_frame_locals()
    return True


def _tracebacks_without_frame_locals() -> None:
    """Rasa's JSON logs (a service's stderr is no terminal) render each exception with structlog's
    `dict_tracebacks`, which lists every frame's local variables: the sender's id (an openid), the
    resident's words, the metadata. Read by Rasa's `configure_structlog` when it runs, so replaced
    before: the same tracebacks, without the locals."""
    import structlog.processors
    from structlog.tracebacks import ExceptionDictTransformer

    structlog.processors.dict_tracebacks = structlog.processors.ExceptionRenderer(
        ExceptionDictTransformer(show_locals=False))


def _fail_turns_when_the_tracker_store_fails() -> None:
    from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
    from rasa.core.channels.rest import RestInput
    from rasa.core.tracker_store import FailSafeTrackerStore

    def raising(name: str) -> Any:
        async def call(self: FailSafeTrackerStore, *args: Any) -> Any:
            try:
                return await getattr(self._tracker_store, name)(*args)
            except Exception as exc:
                log.error("tracker store %s failed (%s): the turn fails, no in-memory stand-in",
                          name, exc.__class__.__name__)
                raise
        return call

    for name in ("retrieve", "retrieve_full_tracker", "save", "keys"):
        setattr(FailSafeTrackerStore, name, raising(name))

    blueprint = RestInput.blueprint

    def answering_nothing_for_a_failed_turn(self: RestInput, on_new_message: Any) -> Any:
        async def handle(message: UserMessage) -> None:
            try:
                await on_new_message(message)
            except Exception as exc:  # noqa: BLE001 - a failed turn answers nothing
                log.error("a turn failed (%s); it answers nothing", exc.__class__.__name__)
                if isinstance(message.output_channel, CollectingOutputChannel):
                    message.output_channel.messages.clear()
        return blueprint(self, handle)

    RestInput.blueprint = answering_nothing_for_a_failed_turn  # type: ignore[method-assign]


def main() -> None:
    install()
    from rasa.__main__ import main as rasa_main

    rasa_main()


if __name__ == "__main__":
    main()
