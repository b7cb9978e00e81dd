"""The ``simulated`` driver: an in-process cloud whose state lives in a SQLite file.

Where it sits: the embedded default of ``skybroker up`` and the target of tests and
benchmarks; registered in ``providers.registry``. ``AccountConfig.endpoint`` names the state
file (None = a private temporary file); several accounts and regions share one file.
"""

from providers.simulated.base import SimOptions
from providers.simulated.engine import SimulatedProvider
from providers.simulated.faults import FaultInjector, FaultRates
from providers.simulated.store import SimStore

__all__ = ["FaultInjector", "FaultRates", "SimOptions", "SimStore", "SimulatedProvider"]
