"""Storage: engine and transactions, the ORM models and migrations, ticket numbering and the job queue as plumbing."""
