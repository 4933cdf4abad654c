"""Row templates: what enrichment adds to an event, one row per distinct answer.

Every enriched row of an event is its event's columns plus the catalog's answer for one of its
charges: subscription, plan, customer, aggregation type, charge, filter, pricing group. A batch
of 50k events has a few thousand distinct answers, so each is kept once, as a
:class:`RowTemplate` with an integer id, and a row is that id. The table's columns become Arrow
arrays that the wire tables ``take`` from.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pyarrow as pa

from schemas.kinds import AggregationType, ChargeModel
from sinks.wire import grouped_by_json

#: Templates kept before the engine starts a new table (between batches only: rows and the
#: enricher's memos hold ids).
TEMPLATE_LIMIT = 1_000_000


@dataclass(frozen=True, slots=True)
class RowTemplate:
    """The catalog's answer for one (event key, charge, filter, group) combination."""

    organization_id: str
    external_subscription_id: str
    code: str
    subscription_id: str
    plan_id: str
    customer_id: str
    aggregation_type: AggregationType
    charge_id: str  # "" for the row of an event whose plan has no charge on its metric
    charge_filter_id: str
    grouped_by: tuple[tuple[str, str], ...]
    charge_model: ChargeModel | str


# Template fields that the wire tables read, with the JSON text for grouped_by.
_COLUMNS = (
    "organization_id", "external_subscription_id", "code", "subscription_id", "plan_id",
    "customer_id", "aggregation_type", "charge_id", "charge_filter_id",
)


class TemplateTable:
    """Templates by id, and their columns as Arrow arrays (rebuilt only when it grew)."""

    def __init__(self) -> None:
        self.templates: list[RowTemplate] = []
        self._ids: dict[RowTemplate, int] = {}
        self._arrays: dict[str, pa.Array] = {}
        self._arrays_size = -1
        # Batches may be prepared on two threads at once (the next batch, and the quarantine's
        # trial runs of the batch being written): an id is read and taken under the lock.
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.templates)

    def id_of(self, template: RowTemplate) -> int:
        """The id of ``template``, added if new."""
        found = self._ids.get(template)
        if found is None:
            with self._lock:
                found = self._ids.get(template)
                if found is None:
                    found = self._ids[template] = len(self.templates)
                    self.templates.append(template)
        return found

    @property
    def full(self) -> bool:
        """Past :data:`TEMPLATE_LIMIT`: time for a new table (and new memos of its ids)."""
        return len(self.templates) > TEMPLATE_LIMIT

    def columns(self) -> dict[str, pa.Array]:
        """Each template field as an array indexed by template id, plus ``grouped_by_json``
        and ``rolled`` (whether the row has a charge, so takes part in the roll-up)."""
        with self._lock:
            return self._columns()

    def _columns(self) -> dict[str, pa.Array]:
        if self._arrays_size != len(self.templates):
            ts = self.templates
            arrays = {
                name: pa.array([getattr(t, name) for t in ts], pa.string()) for name in _COLUMNS
            }
            arrays["grouped_by_json"] = pa.array(
                [grouped_by_json(t.grouped_by) for t in ts], pa.string()
            )
            arrays["rolled"] = pa.array([bool(t.charge_id) for t in ts], pa.bool_())
            self._arrays, self._arrays_size = arrays, len(ts)
        return self._arrays
