"""Business logic: one module (or package) per kind, placement, the leak sweeper.

Where it sits: above the runtime (``controller``) and the clouds (``providers``), below the
composition root (``skybroker``), which builds one ``Deps`` and calls each module's
``register(deps)`` to add its controller to the manager.
"""
