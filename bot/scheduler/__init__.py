"""Scheduled follow-ups: the durable job queue, its worker and the job handlers."""
