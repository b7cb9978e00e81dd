"""Business logic, one module per kind (and placement); built on the runtime in ``controller``.

Empty until the reconcilers issue: the Foundation ships only the kind-independent runtime.
"""
