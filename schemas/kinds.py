"""The closed sets of the catalog: aggregation types and charge models (Lago's names).

Each set is one :class:`~enum.StrEnum`, the only list of its values: the catalog parsers
accept exactly its members, billing keeps one pricing function and one property validator per
:class:`ChargeModel` (``billing.charge_models.PRICING_FUNCTIONS``,
``billing.validation.VALIDATORS``), the roll-ups and units dispatch on
:class:`AggregationType`. A member *is* its string (``AggregationType.SUM == "sum_agg"``, same
hash, ``str()`` and JSON), so stored rows, JSON bodies and code holding plain strings read the
same values as before.
"""

from __future__ import annotations

from enum import StrEnum, unique


@unique
class AggregationType(StrEnum):
    """How a billable metric turns its events into units (SPEC §5)."""

    COUNT = "count_agg"
    SUM = "sum_agg"
    MAX = "max_agg"
    LATEST = "latest_agg"
    UNIQUE_COUNT = "unique_count_agg"
    WEIGHTED_SUM = "weighted_sum_agg"


@unique
class ChargeModel(StrEnum):
    """How a charge prices its units (SPEC §6)."""

    STANDARD = "standard"
    GRADUATED = "graduated"
    VOLUME = "volume"
    PACKAGE = "package"
    PERCENTAGE = "percentage"
    GRADUATED_PERCENTAGE = "graduated_percentage"
    DYNAMIC = "dynamic"


#: Types that cannot be ``recurring`` (Lago: ``not_compatible_with_aggregation_type``).
NON_RECURRING_TYPES = frozenset(
    {AggregationType.COUNT, AggregationType.MAX, AggregationType.LATEST}
)
#: Types whose metric field must hold a number.
NUMERIC_TYPES = frozenset(
    {
        AggregationType.SUM,
        AggregationType.MAX,
        AggregationType.LATEST,
        AggregationType.WEIGHTED_SUM,
    }
)
#: Lago's ``BillableMetric::AGGREGATION_TYPES_PAYABLE_IN_ADVANCE``
#: (getlago/lago-api app/models/billable_metric.rb:38; ``custom_agg`` aside, not supported here).
PAYABLE_IN_ADVANCE_TYPES = frozenset(
    {AggregationType.COUNT, AggregationType.SUM, AggregationType.UNIQUE_COUNT}
)
#: Charge models whose Lago validator refuses a ``latest_agg`` metric
#: (app/services/charges/validators/percentage_service.rb:23-27,
#: graduated_percentage_service.rb:32-36).
NOT_ON_LATEST_AGG = frozenset({ChargeModel.PERCENTAGE, ChargeModel.GRADUATED_PERCENTAGE})
