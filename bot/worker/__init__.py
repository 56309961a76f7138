"""The follow-up worker: claims due jobs from the queue and runs them."""
