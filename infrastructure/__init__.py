"""Adapters for the application's ports: the event store on `eventsourcing`,
keys and cryptography, and the SQLite and PostgreSQL databases."""
