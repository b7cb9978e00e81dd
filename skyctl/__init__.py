"""skyctl: the kubectl-like client of skybroker (DESIGN §7).

Where it sits: at the edge, beside the REST API. It speaks to the API server over HTTP
(``skyctl.http``) or, in the ``--etcd ENDPOINTS`` admin mode, writes the store directly
(``skyctl.etcd``); both implement ``skyctl.backend.Backend`` so every verb, and
the one apply/diff/prune logic (``skyctl.apply``), is written once.
"""
