"""Property-management customer-service assistant: the service package.

Everything the business cares about (tickets, their states, SLA promises, triage)
lives here; Rasa custom actions, the gateway, the staff side and the scheduler all
call into this package instead of re-implementing rules.
"""

__version__ = "0.1.0"
