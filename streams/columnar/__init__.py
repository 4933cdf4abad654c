"""The columnar batch engine: a batch's decoded events to its wire tables as columns.

The per-event rules stay in the pure core (``schemas``, ``enrichment``, ``aggregation``) and
decide every answer; this package only changes how a batch is carried through them:

* :mod:`~streams.columnar.templates`: the catalog's answers (subscription, plan, customer,
  charge, filter, pricing group) as a table of row templates, built once per combination;
* :mod:`~streams.columnar.enrich`: dedup and enrichment in log order, each stored row being a
  template id and its value, not an object;
* :mod:`~streams.columnar.rollup`: the roll-up of those rows as one Arrow ``group_by``;
* :mod:`~streams.columnar.engine`: the batch from raw messages to its wire tables.

Rows of the kinds whose states need each event (``unique_count``, ``weighted_sum``,
percentage charges) and rejections take the per-event functions, unchanged.
"""
