"""Every projection Headwater runs, by name."""

from __future__ import annotations

from typing import Final

from infrastructure.projections.audit import AuditProjection
from infrastructure.projections.base import Projection
from infrastructure.projections.dedupe import DedupeProjection
from infrastructure.projections.deliveries import DeliveriesProjection
from infrastructure.projections.integrations import IntegrationsProjection
from infrastructure.projections.subscribers import SubscribersProjection


def all_projections() -> list[Projection]:
    return [
        IntegrationsProjection(),
        SubscribersProjection(),
        DedupeProjection(),
        AuditProjection(),
        DeliveriesProjection(),
    ]


NAMES: Final = tuple(p.name for p in all_projections())
