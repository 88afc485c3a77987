"""A local cloud for end-to-end tests: systemd-nspawn machines, loop-device volumes,
veth NICs on a private bridge, and a Pulumi mock that drives the real program on them."""

from .cloud import LocalCloud, missing_prerequisites
from .disks import Volume, by_id_path
from .leftovers import sweep_leftovers
from .machines import Machine

__all__ = ["LocalCloud", "Machine", "Volume", "by_id_path", "missing_prerequisites",
           "sweep_leftovers"]
