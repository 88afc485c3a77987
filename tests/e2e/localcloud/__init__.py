"""A local cloud for end-to-end tests: systemd-nspawn machines, loop-device volumes,
veth NICs on a private bridge, and a Pulumi mock engine that drives the real program
on them (engine.py)."""

from .cloud import LocalCloud, missing_prerequisites
from .disks import Volume, by_id_path
from .engine import DeploymentError, Engine
from .leftovers import sweep_leftovers
from .machines import Machine
from .mock_cloud import CloudMocks, Operation, RunLog

__all__ = ["CloudMocks", "DeploymentError", "Engine", "LocalCloud", "Machine", "Operation",
           "RunLog", "Volume", "by_id_path", "missing_prerequisites", "sweep_leftovers"]
