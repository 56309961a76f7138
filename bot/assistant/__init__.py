"""The Rasa assistant as seen from the service runtime: a client of its HTTP API
(implements bot.cases.ports.Assistant)."""
