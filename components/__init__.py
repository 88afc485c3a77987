"""The Pegasus cluster program, in five layers; each imports only from the layers above it here.

    spec/        0  the stack config: read, validated into a typed ClusterSpec, planned
                    into hosts (pure: no Pulumi resources, runs and fails first)
    render/      1  what a host receives, rendered from the spec: config.ini, units,
                    scripts, paths (pure)
    ssh/         2  the SSH transport from where `pulumi up` runs (system `ssh`)
    operations/  3  dynamic providers that act on a running cluster over SSH: rolling
                    restart, drain, health, ZooKeeper path guard, fixed settings
    resources/   4  the Pulumi components that make machines, disks, network and
                    servers, wired into one PegasusCluster

tests/unit/test_layers.py checks the rule (and that no two modules import each
other). legacy_paths.py keeps the modules' old flat paths importable: existing
stacks' state names them.
"""

from components.legacy_paths import install as _install_legacy_paths

_install_legacy_paths()
