"""The HTTP layer: Lago-compatible handlers over the services, as one route table.

* :mod:`api.envelope`: responses, Lago's error envelope and pagination, JSON bodies;
* :mod:`api.handlers`: events, the catalog document, current usage, status, reconcile;
* :mod:`api.lago`: Lago's control plane, a module per resource;
* :mod:`api.dead_letters`: dead letters over HTTP;
* :mod:`api.routes`: THE route table (method, path pattern, handler, needs a body);
* :mod:`api.errors`: what an exception a handler raised is answered with;
* :mod:`api.server`: binds the table to Faust's web server (readiness gate, auth, body limit,
  metrics by route pattern, envelopes), with ``/health``, ``/ready`` and ``/metrics``.

It imports the services and the core, never ``streams`` or ``meterline``.
"""
