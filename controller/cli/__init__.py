"""skyctl: the kubectl-like client of skybroker (DESIGN §7).

Where it sits: at the edge, beside the REST API. It speaks to the API server over HTTP
(``controller.cli.http``) or, in the ``--etcd ENDPOINTS`` admin mode, writes the store directly
(``controller.cli.etcd``); both implement ``controller.cli.backend.Backend`` so every verb, and
the one apply/diff/prune logic (``controller.cli.apply``), is written once.
"""
