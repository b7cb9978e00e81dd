"""skyctl: the kubectl-like client of skybroker (DESIGN §7).

Where it sits: at the edge, beside the REST API. It speaks to the API server over HTTP
(``skyctl.http``) or, in the ``--etcd ENDPOINTS`` admin mode, writes the store directly
(``skyctl.etcd``, through the API server's own operations, ``apiserver.local``); both
implement ``skyctl.backend.Backend`` so every verb is written once, and ``apply``, ``diff`` and
``--prune`` run the apply engine the GitSource reconciler shares (``controller.apply``).
"""
