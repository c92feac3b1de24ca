"""The HTTP API: the admin API under `/admin/v1`, the public endpoints under
`/v5`, and the health checks."""
