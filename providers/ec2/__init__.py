"""The ``ec2`` driver: libcloud's EC2 driver with portability fixes, behind ``CloudProvider``.

Where it sits: registered in ``providers.registry``; proven against a real EC2 API server
(moto_server) by ``tests/integration/providers``. See ``driver.py`` for the fixes.
"""

from providers.ec2.adapter import Ec2Provider
from providers.ec2.driver import Ec2ApiError, PortableEC2NodeDriver

__all__ = ["Ec2ApiError", "Ec2Provider", "PortableEC2NodeDriver"]
