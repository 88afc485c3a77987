"""Pulumi program: an Apache Pegasus cluster from the stack's `pegasus:*` config."""

import gc
from pathlib import Path

import pulumi

from components.resources.cluster import PegasusCluster
from components.spec.retained_data import retained_data_notice
from components.spec.reader import SpecError
from components.spec.validation import build_spec
from components.spec.stack_config import read_stack_config

# Every resource keeps dozens of Outputs and futures alive until the program
# ends, and Python's cyclic collector rescans them all over and over: about 40%
# of the evaluation of 100 ReplicaServers (`make bench`). Collecting seldom
# costs a few MiB at most.
gc.set_threshold(100_000, 50, 1000)

values, secret_keys = read_stack_config()
try:
    spec = build_spec(values, stack=pulumi.get_stack(), secret_keys=secret_keys, project_dir=Path(__file__).parent)
except SpecError as error:
    # RunError: Pulumi prints the message alone, without a Python traceback.
    raise pulumi.RunError(str(error)) from None
if spec.retain_data:
    pulumi.log.warn(retained_data_notice(spec))

# The stack's one cluster keeps the resources that stacks deployed before
# resource names carried the cluster's name (components/resources/resource_names.py).
cluster = PegasusCluster(spec.cluster_name, spec, adopt_old_names=True)

pulumi.export("clusterName", spec.cluster_name)
pulumi.export("metaServers", cluster.meta_servers)
pulumi.export("clientConfig", cluster.client_config)  # the MetaServer list as each client takes it
if cluster.client_security_group_id is not None:
    pulumi.export("clientSecurityGroupId", cluster.client_security_group_id)  # applications' instances join it
pulumi.export("zookeeperServers", cluster.zookeeper_servers)
pulumi.export("clusterRoot", cluster.cluster_root)
pulumi.export("replicaServers", cluster.replica_servers)
pulumi.export("collector", cluster.collector)
pulumi.export("packageVersion", spec.package.version)
pulumi.export("ssh", cluster.ssh)
if cluster.monitoring is not None:
    pulumi.export("monitoring", cluster.monitoring)
# The servers' and the bastion's SSH host keys, as the stack holds them: for your own known_hosts.
pulumi.export("knownHosts", cluster.known_hosts)
