"""The EC2 actions by name: what ``Action=…`` runs.

Where it sits: between ``routes`` (which verifies, parses and answers) and the action modules
(``catalog`` …), which each add their handlers with a ``register(registry)`` function;
``actions.default_actions`` collects them. A handler is a plain function::

    def describe_regions(context: ActionContext, params: Params) -> Fields: ...

run on a worker thread (it may block on the store). It reads its input from ``params``
(``params.Params``: ``require``, ``strings("X")``, ``filters()``, ``tag_specifications()`` …),
acts through ``context.backend`` as the caller, and returns the fields of its answer, which
``xmlwriter`` wraps in ``<{Action}Response>`` with the request id. Refusals are raised:
``errors.Ec2Error`` (or ``missing_parameter``/``invalid_parameter``), or the REST errors of
``context.backend``, mapped by ``errors.ec2_error_from``. An action no handler is registered for
answers ``InvalidAction``.
"""

from __future__ import annotations

from collections.abc import Callable

from apiserver.ec2.context import ActionContext
from apiserver.ec2.errors import Ec2Error
from apiserver.ec2.params import Params
from apiserver.ec2.xmlwriter import Fields

__all__ = ["ActionRegistry", "Handler"]

Handler = Callable[[ActionContext, Params], Fields]


class ActionRegistry:
    """Action name → handler; a name is registered once."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def add(self, name: str, handler: Handler) -> None:
        if name in self._handlers:
            raise ValueError(f"the EC2 action {name} is registered twice")
        self._handlers[name] = handler

    def handler(self, name: str) -> Handler:
        """The handler of action ``name``; ``InvalidAction`` if there is none."""
        found = self._handlers.get(name)
        if found is None:
            raise Ec2Error("InvalidAction", f"The action {name} is not valid for this web service.")
        return found

    def names(self) -> list[str]:
        return sorted(self._handlers)
