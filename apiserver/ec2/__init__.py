"""The IaaS front door: the pools through EC2's Query API (DESIGN §12).

Where it sits: inside the API server, beside the REST resource pipeline, mounted by
``apiserver.app`` at ``/ec2/`` (POST with a form body, GET with a query string), protocol
version 2016-11-15. A request is authenticated by its SigV4 signature with an access key
(``apiserver.accesskeys``: the key's secret, user and namespace), then its action runs as that
user through the same resource operations as REST (``apiserver.local.LocalBackend``): RBAC,
admission and quota apply unchanged, and there is no second write path.

Modules, in the order a request meets them:

- ``routes``     the ASGI application: body, verification, dispatch, answer;
- ``params``     form/query decoding and EC2's list parameters (``X.N``, ``Filter.N…``);
- ``sigv4``      signature verification (header and presigned; botocore computes);
- ``registry``   action name → handler; ``actions`` lists the action modules;
- ``context``    what a handler is given (credential, region = Pool, backend as the user);
- ``catalog``    the read-only actions: regions, zones, images, instance types;
- ``network``    VPCs and subnets (``vpcs``), security groups (``securitygroups``, their
                 rules by ``permissions``);
- ``volumes``    the volume actions (Create/Describe/Attach/Detach/DeleteVolume), answering with
  ``volumeview`` (a Volume's EC2 state, attachment and DescribeVolumes item);
- ``instances``  Run/Describe/Start/Stop/TerminateInstances (``instanceview``: states, items);
- ``tags``       Create/Delete/DescribeTags over every mapped resource;
- ``resources``  the ids, tags-as-labels and pages every resource action shares;
- ``filters``    EC2's ``Filter.N`` matching;
- ``xmlwriter``  the XML answer and EC2's error document; ``errors`` the error codes.
"""

from apiserver.ec2.context import ActionContext
from apiserver.ec2.errors import Ec2Error
from apiserver.ec2.params import API_VERSION, Params
from apiserver.ec2.registry import ActionRegistry, Handler
from apiserver.ec2.routes import EC2_ROOT, Ec2Routes, is_ec2_path
from apiserver.ec2.xmlwriter import EC2_NAMESPACE, Fields

__all__ = [
    "API_VERSION",
    "EC2_NAMESPACE",
    "EC2_ROOT",
    "ActionContext",
    "ActionRegistry",
    "Ec2Error",
    "Ec2Routes",
    "Fields",
    "Handler",
    "Params",
    "is_ec2_path",
]
