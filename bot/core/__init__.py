"""Pure domain: case kinds and states, deadlines and working days, triage, project rules,
rooms, phones, privacy and what residents read. Imports nothing from the other layers."""
