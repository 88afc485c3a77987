"""A local cloud: real Linux machines on this host (systemd-nspawn containers with
their own addresses on a bridge, sparse-file disks at stable /dev/disk/by-id paths,
an SSH key pair). The end-to-end suite deploys on it, and `python -m
tools.localcloud` makes a few machines a user keeps, to try a cluster without a
cloud account (local_machines.py)."""

from .cloud import LocalCloud, missing_prerequisites
from .disks import Volume, by_id_path
from .leftovers import sweep_leftovers
from .machines import Machine

__all__ = ["LocalCloud", "Machine", "Volume", "by_id_path", "missing_prerequisites", "sweep_leftovers"]
