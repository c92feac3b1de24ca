"""Projections: the read models built from the event log, how they run, and
the queries that read them."""
