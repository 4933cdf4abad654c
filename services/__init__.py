"""The application services: catalog, usage, dead letters, API keys, status and reports.

They sit between the pure core (schemas, enrichment, aggregation, billing) and the adapters:
they use the store through its role protocols (:mod:`sinks.store`: ``UsageStore``,
``CatalogStore``, ``DeadLetterStore``, ``OperationsStore``) and declare the protocols they
need from the others (:class:`services.publishing.EventPublisher`, implemented by the Kafka
producer in ``streams``). Nothing here imports ``streams``, ``api`` or ``meterline``.
"""
