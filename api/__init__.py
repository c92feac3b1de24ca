"""Entry points: the HTTP API (`api.http`), the command line (`api.cli`), and
the composition root that wires the layers together (`api.bootstrap`)."""
