"""The generic controller runtime of skybroker: store, cache, workqueue, reconcile loop, manager.

It knows no particular kind: everything kind-specific lives in ``reconcilers/``.
"""
