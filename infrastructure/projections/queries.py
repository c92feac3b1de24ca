"""Reading the read models: SQL over the live generation of each projection.

Every query runs in one read transaction that also reads the projection's
position, so an answer and its `X-Projection-Position` always agree.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from application.reading import AuditFilter
from infrastructure.projections import integrations, subscribers
from infrastructure.projections.audit import COLUMNS as AUDIT_COLUMNS
from infrastructure.projections.base import Registry
from infrastructure.projections.dedupe import COLUMNS as DEDUPE_COLUMNS
from infrastructure.sealing import FieldSealer

EXPORT_PAGE: Final = 1000


@dataclass(frozen=True)
class Rows:
    """Rows of one query and the position of the projection they came from."""

    rows: list[dict[str, Any]]
    position: int


#: Where each audit action keeps sealed values: in `changes`, or in details.
SEALED_CHANGES: Final = frozenset({"ProfileChanged", "ConsentRecorded"})
SEALED_DETAILS: Final = {
    "EventLogged": ("data",),
    "MessageTriggered": ("requestContent", "recipient"),
}


class SqlReadModels:
    """The `ReadModels` port on the read-model database.

    Sealed values are opened here, with one batched key lookup per answer,
    only when the caller may see them (`reveal`); otherwise they read as null.
    A value whose key was destroyed reads as null and marks its row erased.
    """

    def __init__(self, registry: Registry, sealer: FieldSealer) -> None:
        self._registry = registry
        self._database = registry.database
        self._sealer = sealer

    def _open(self, documents: list[Any], *, reveal: bool) -> list[tuple[Any, bool]]:
        if not reveal:
            return [(_blank(document), False) for document in documents]
        return self._sealer.open_documents(documents)

    def open_profiles(self, rows: list[dict[str, Any]], *, reveal: bool) -> None:
        """Open the sealed values of profile rows, in place."""
        opened = self._open([[r["fields"], r["lists"]] for r in rows], reveal=reveal)
        for row, ((fields, lists), erased) in zip(rows, opened, strict=True):
            row["fields"], row["lists"], row["erased"] = fields, lists, erased

    def open_audit(self, rows: list[dict[str, Any]], *, reveal: bool) -> None:
        """Open the sealed values of audit entries, in place."""
        documents = []
        for row in rows:
            detail_keys = SEALED_DETAILS.get(row["action"], ())
            documents.append(
                [
                    row["changes"] if row["action"] in SEALED_CHANGES else None,
                    {key: row["details"].get(key) for key in detail_keys},
                    row["request"],
                ]
            )
        opened = self._open(documents, reveal=reveal)
        for row, ((changes, details, request), erased) in zip(
            rows, opened, strict=True
        ):
            if row["action"] in SEALED_CHANGES:
                row["changes"] = changes
            for key, value in details.items():
                if key in row["details"]:
                    row["details"][key] = value
            row["request"] = request
            row["erased"] = erased

    def status(self) -> list[dict[str, Any]]:
        answers = []
        for name in self._registry.projections:
            state = self._registry.state(name)
            answers.append(
                {
                    "name": name,
                    "position": state.live_position,
                    "generation": state.live_generation,
                    "rebuildRequested": state.rebuild_requested,
                    "buildingGeneration": state.building_generation,
                    "buildingPosition": state.building_position,
                }
            )
        return answers

    def request_rebuild(self, name: str) -> None:
        self._registry.request_rebuild(name)

    def position(self, name: str) -> int:
        with self._database.reading() as cursor:
            return self._registry.live_tables(cursor, name)[1]

    def integrations(self) -> Rows:
        with self._database.reading() as cursor:
            tables, position = self._registry.live_tables(cursor, "integrations")
            cursor.execute(
                f"SELECT {', '.join(integrations.COLUMNS)} FROM {tables['rows']}"  # noqa: S608
                " ORDER BY created_at, id"
            )
            rows = [integrations.read_row(v) for v in cursor.fetchall()]
        return Rows(rows, position)

    def profiles(
        self, *, claim_id: str | None, after: tuple[str, str] | None, limit: int
    ) -> Rows:
        columns = ", ".join(f"p.{c}" for c in subscribers.COLUMNS)
        with self._database.reading() as cursor:
            tables, position = self._registry.live_tables(cursor, "subscribers")
            profiles, lookups = tables["profiles"], tables["lookups"]
            if claim_id is not None:
                cursor.execute(
                    f"SELECT {columns} FROM {profiles} p JOIN {lookups} l"  # noqa: S608
                    " ON l.subscriber_id = p.id WHERE l.claim_id = %s",
                    (claim_id,),
                )
            elif after is None:
                cursor.execute(
                    f"SELECT {columns} FROM {profiles} p"  # noqa: S608
                    " ORDER BY p.created_at, p.id LIMIT %s",
                    (limit,),
                )
            else:
                cursor.execute(
                    f"SELECT {columns} FROM {profiles} p"  # noqa: S608
                    " WHERE p.created_at > %s OR (p.created_at = %s AND p.id > %s)"
                    " ORDER BY p.created_at, p.id LIMIT %s",
                    (after[0], after[0], after[1], limit),
                )
            rows = [subscribers.read_row(v) for v in cursor.fetchall()]
        return Rows(rows, position)

    def profile(self, subscriber_id: str) -> Rows:
        with self._database.reading() as cursor:
            tables, position = self._registry.live_tables(cursor, "subscribers")
            cursor.execute(
                f"SELECT {', '.join(subscribers.COLUMNS)} FROM {tables['profiles']}"  # noqa: S608
                " WHERE id = %s",
                (subscriber_id,),
            )
            rows = [subscribers.read_row(v) for v in cursor.fetchall()]
        return Rows(rows, position)

    def audit(
        self,
        where: AuditFilter,
        *,
        after: int | None,
        limit: int,
        descending: bool = False,
    ) -> Rows:
        with self._database.reading() as cursor:
            tables, position = self._registry.live_tables(cursor, "audit")
            query, params = _audit_query(tables["entries"], tables["requests"], where)
            if after is not None:
                query += (
                    " AND e.position < %s" if descending else " AND e.position > %s"
                )
                params.append(after)
            query += " ORDER BY e.position " + ("DESC" if descending else "ASC")
            query += " LIMIT %s"
            params.append(limit)
            cursor.execute(query, params)
            rows = [_audit_row(values) for values in cursor.fetchall()]
        return Rows(rows, position)

    def audit_export(self, where: AuditFilter) -> Iterator[dict[str, Any]]:
        """Every matching entry, page by page, in constant memory."""
        after: int | None = None
        while True:
            page = self.audit(where, after=after, limit=EXPORT_PAGE).rows
            yield from page
            if len(page) < EXPORT_PAGE:
                return
            after = page[-1]["position"]

    def dedupe(self, *, integration_id: str | None, key_digest: str | None) -> Rows:
        with self._database.reading() as cursor:
            tables, position = self._registry.live_tables(cursor, "dedupe")
            query = f"SELECT {', '.join(DEDUPE_COLUMNS)} FROM {tables['windows']} WHERE 1 = 1"  # noqa: S608, E501
            params: list[Any] = []
            if integration_id is not None:
                query += " AND integration_id = %s"
                params.append(integration_id)
            if key_digest is not None:
                query += " AND key_digest = %s"
                params.append(key_digest)
            cursor.execute(
                query + " ORDER BY last_accepted_at, window_id LIMIT 1000", params
            )
            rows = [
                dict(zip(DEDUPE_COLUMNS, v, strict=True)) for v in cursor.fetchall()
            ]
        return Rows(rows, position)


def _audit_query(
    entries: str, requests: str, where: AuditFilter
) -> tuple[str, list[Any]]:
    # Entries caused by a submission take the actor, the request and the
    # configuration version from the submission's own entry when they lack
    # them (an event logged, an identity claimed, a dedupe window opened).
    columns = ", ".join(
        "COALESCE(e.actor, r.actor)"
        if c == "actor"
        else "COALESCE(e.request, r.request)"
        if c == "request"
        else "COALESCE(e.configuration_version, s.configuration_version)"
        if c == "configuration_version"
        else f"e.{c}"
        for c in AUDIT_COLUMNS
    )
    query = (
        f"SELECT {columns} FROM {entries} e"  # noqa: S608
        f" LEFT JOIN {requests} r ON r.submission_id = e.submission_id"
        f" LEFT JOIN {entries} s ON s.subject_id = e.submission_id"
        " AND s.subject_type = 'submission' WHERE 1 = 1"
    )
    params: list[Any] = []
    conditions: Sequence[tuple[str, str | None]] = (
        ("e.subject_id = %s", where.subject_id),
        ("e.integration_id = %s", where.integration_id),
        ("COALESCE(e.actor, r.actor) = %s", where.actor),
        ("e.action = %s", where.action),
        ("e.occurred_at >= %s", where.occurred_from),
        ("e.occurred_at <= %s", where.occurred_to),
    )
    for condition, value in conditions:
        if value is not None:
            query += f" AND {condition}"
            params.append(value)
    return query, params


def _blank(document: Any) -> Any:
    """A sealed document with every string replaced by null."""
    if isinstance(document, dict):
        return {k: _blank(v) for k, v in document.items()}
    if isinstance(document, list):
        return [_blank(v) for v in document]
    return None if isinstance(document, str) else document


def _audit_row(values: Sequence[Any]) -> dict[str, Any]:
    row = dict(zip(AUDIT_COLUMNS, values, strict=True))
    for name in ("changes", "details", "request"):
        row[name] = orjson.loads(row[name]) if row[name] is not None else None
    return row
