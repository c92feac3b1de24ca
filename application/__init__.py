"""Use cases: the commands and queries that Headwater offers, written against
ports (`application.ports`) that infrastructure implements."""
