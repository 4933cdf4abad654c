"""Dedup and enrichment in log order, with each stored row kept as columns.

:func:`dedup_and_enrich_columns` makes the decisions of :func:`streams.batch.dedup_and_enrich`
(same order, same rules, same reason codes) but appends a stored event's rows as a template id
(:mod:`~streams.columnar.templates`), its event's position and its value to
:class:`FastRows`, instead of building an :class:`~enrichment.enricher.EnrichedRow` per row.

A route (organization, subscription, metric, in force at the event's time) is *fast* when its
rows can be rolled up as columns: a known metric, an active subscription, and either no charge
on the metric or an aggregation of :data:`FAST_TYPES` with no percentage charge. Any other
event takes :func:`enrichment.enricher.enrich`, unchanged: rejections (with their messages), and
the kinds whose states need each event (``unique_count``, ``weighted_sum``, percentage values).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from enrichment.catalog_index import CatalogIndex, PreparedCharge, Route
from enrichment.enricher import EnrichedRow, Rejection, checked_value, enrich, match_charge
from schemas.event import UsageEvent
from schemas.kinds import AggregationType, ChargeModel
from streams.batch import (
    PROCESSING_ERROR,
    BatchResult,
    DeadLetter,
    RawMessage,
    SeenLookup,
    is_duplicate,
)
from streams.columnar.templates import RowTemplate, TemplateTable

#: Aggregations whose per-bucket state is a count, a sum, a max and an arg-max: columns.
FAST_TYPES = frozenset({
    AggregationType.COUNT, AggregationType.SUM, AggregationType.MAX, AggregationType.LATEST,
})
_COUNT = AggregationType.COUNT
_UNIQUE_COUNT = AggregationType.UNIQUE_COUNT
_MEMO_LIMIT = 100_000  # memoized property combinations per route
_PLAN_LIMIT = 200_000  # route plans kept before the cache starts afresh
_VALUE_LIMIT = 16_384  # memoized string values per (aggregation, field): a few MB


@dataclass(slots=True)
class RoutePlan:
    """How the events of one route become rows (``fast`` False: the per-event function)."""

    route: Route
    fast: bool
    organization_id: str = ""
    external_subscription_id: str = ""
    code: str = ""
    aggregation_type: AggregationType = _COUNT
    field_name: str | None = None  # the metric's (for rejection messages)
    field_key: str = ""  # the property it reads
    keys: tuple[str, ...] = ()  # the properties the charges' filters and groups read
    no_charge: tuple[int, ...] = ()  # the template of a route without charges
    memo: dict[tuple[object, ...], tuple[int, ...]] = field(default_factory=dict)
    # string value → its answer, shared by the routes of one (aggregation, field)
    values: dict[str, ValueAnswer] = field(default_factory=dict)


@dataclass(slots=True)
class FastRows:
    """Rows of fast routes, as columns (one entry per row)."""

    templates: list[int] = field(default_factory=list)
    events: list[int] = field(default_factory=list)  # its event's index among stored events
    stored: list[UsageEvent] = field(default_factory=list)  # every stored event, in log order
    values: list[str] = field(default_factory=list)  # canonical text of the metric's value
    decimals: list[str | None] = field(default_factory=list)  # the stored decimal's text


#: One event's fast answer: its template ids, value text and decimal text.
FastAnswer = tuple[tuple[int, ...], str, str | None]
#: A metric value's (text, stored decimal text), or why it is rejected.
ValueAnswer = tuple[str, str | None] | Rejection


class ColumnarEnricher:
    """Enrichment against one catalog index, with its route plans and row templates."""

    def __init__(self, index: CatalogIndex):
        self.index = index
        self.table = TemplateTable()
        self._plans: dict[int, RoutePlan] = {}
        self._values: dict[tuple[AggregationType, str | None], dict[str, ValueAnswer]] = {}

    def enrich(self, event: UsageEvent) -> FastAnswer | list[EnrichedRow] | Rejection:
        """The event's rows: a fast answer, or what :func:`enrich` gives for a slow route."""
        route = self.index.route(
            event.organization_id, event.external_subscription_id, event.code,
            event.timestamp_ms,
        )
        plan = self._plans.get(id(route))
        if plan is None or plan.route is not route:
            plan = self._plan(route, event)
        if not plan.fast:
            return enrich(event, self.index)
        text: str
        decimal_text: str | None
        if plan.aggregation_type is _COUNT:
            text = decimal_text = "1"
        else:
            raw = event.properties.get(plan.field_key)
            if type(raw) is str:
                answer = plan.values.get(raw)
                if answer is None:
                    answer = _value(raw, plan)
                    if len(plan.values) >= _VALUE_LIMIT:
                        plan.values.clear()
                    plan.values[raw] = answer
            else:
                answer = _value(raw, plan)
            if type(answer) is Rejection:
                return answer
            text, decimal_text = answer
        if plan.no_charge:
            return plan.no_charge, text, decimal_text
        props = event.properties
        values = tuple([props.get(k) for k in plan.keys])
        try:
            ids = plan.memo.get(values)
        except TypeError:  # an unhashable value: the per-event function raises as it would
            return enrich(event, self.index)
        if ids is None:
            ids = tuple([self._template(plan, c, props) for c in plan.route.charges])
            if all(type(v) is str or v is None for v in values):  # 1 == 1.0 == True
                if len(plan.memo) >= _MEMO_LIMIT:
                    plan.memo.clear()
                plan.memo[values] = ids
        return ids, text, decimal_text

    def _template(self, plan: RoutePlan, prepared: PreparedCharge, props: dict[str, object]) -> int:
        filter_id, group = match_charge(prepared, props)
        charge = prepared.charge
        return self._id(plan, charge.id, filter_id, group, charge.charge_model)

    def _id(
        self, plan: RoutePlan, charge_id: str, filter_id: str,
        group: tuple[tuple[str, str], ...], model: ChargeModel | str,
    ) -> int:
        route = plan.route
        assert route.subscription is not None
        return self.table.id_of(RowTemplate(
            plan.organization_id, plan.external_subscription_id, plan.code,
            route.subscription.id, route.plan_id, route.customer_id, plan.aggregation_type,
            charge_id, filter_id, group, model,
        ))

    def _plan(self, route: Route, event: UsageEvent) -> RoutePlan:
        """The plan of a route, from the event that first met it (a route object is only
        ever returned for its own organization, subscription and code)."""
        metric, sub, charges = route.metric, route.subscription, route.charges
        fast = metric is not None and sub is not None and (
            not charges or (
                metric.aggregation_type in FAST_TYPES
                and all(c.charge.charge_model != ChargeModel.PERCENTAGE for c in charges)
            )
        )
        plan = RoutePlan(route, fast)
        if fast and metric is not None:
            plan.organization_id = event.organization_id
            plan.external_subscription_id = event.external_subscription_id
            plan.code = event.code
            plan.aggregation_type = metric.aggregation_type
            plan.field_name = metric.field_name
            plan.field_key = metric.field_name or ""
            plan.keys = tuple(sorted({k for c in charges for k in c.keys}))
            plan.values = self._values.setdefault((metric.aggregation_type, metric.field_name), {})
            if not charges:
                plan.no_charge = (self._id(plan, "", "", (), ""),)
        if len(self._plans) >= _PLAN_LIMIT:
            self._plans.clear()
        self._plans[id(route)] = plan
        return plan


def _value(raw: object, plan: RoutePlan) -> ValueAnswer:
    """A metric value's answer, from the per-event rules (:func:`checked_value`)."""
    agg = plan.aggregation_type
    checked = checked_value(raw, agg, plan.field_name)
    if type(checked) is Rejection:
        return checked
    text, decimal = checked
    return text, None if decimal is None or agg is _UNIQUE_COUNT else str(decimal)


def dedup_and_enrich_columns(
    events: list[tuple[RawMessage, UsageEvent, bytes]],
    lookup: SeenLookup,
    enricher: ColumnarEnricher,
    result: BatchResult,
    fast: FastRows,
) -> None:
    """Steps 2-3 of a batch, as :func:`streams.batch.dedup_and_enrich` decides them.

    Rows of fast routes go to ``fast``; rows of slow routes to ``result.rows`` (with their
    messages in ``result.sources``); rejections and dedup keys to ``result`` as there.
    """
    tallies, rows, sources = result.tallies, result.rows, result.sources
    templates, positions_of, values, decimals = fast.templates, fast.events, fast.values, \
        fast.decimals
    stored_keys, stored_events = result.stored_keys, fast.stored
    seen, stored_here, inside = lookup.seen, lookup.stored_here, lookup.inside
    for message, event, ident in events:
        tally = tallies[message.partition]
        if is_duplicate(ident, seen, stored_here, inside):
            tally.duplicates += 1
            continue
        try:
            outcome = enricher.enrich(event)
        except Exception as exc:  # a poison message: reject it, never block the partition
            outcome = Rejection(PROCESSING_ERROR, f"{type(exc).__name__}: {exc}")
        if type(outcome) is tuple:
            position = len(stored_keys)  # this event's index among the stored ones
            ids, text, decimal_text = outcome
            count = len(ids)
            templates.extend(ids)
            if count == 1:
                positions_of.append(position)
                values.append(text)
                decimals.append(decimal_text)
            else:
                positions_of.extend([position] * count)
                values.extend([text] * count)
                decimals.extend([decimal_text] * count)
        elif type(outcome) is Rejection:
            result.dead_letters.append(DeadLetter(message, outcome.code, outcome.message, event))
            tally.dead_letters += 1
            continue
        else:
            assert isinstance(outcome, list)
            count = len(outcome)
            rows.extend(outcome)
            sources.extend([message] * count)
        stored_here.add(ident)
        tally.stored += 1
        tally.enriched_rows += count
        stored_keys.append((ident, message))
        stored_events.append(event)
