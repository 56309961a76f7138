"""Use cases: open, move and resolve cases; follow-ups, escalation, alerts, handoff, surveys,
residents and message routing. Reaches the outside only through the interfaces in bot.cases.ports."""
