"""What `pulumi destroy` keeps with `retainData`, and what a later deployment can do with it.

Said once at every `up` of a stack that sets it, so the operator learns before
a destroy, not after: what stays depends on where the machines and the
ZooKeeper ensemble come from. The MetaServers keep the cluster's tables and
where their partitions live in ZooKeeper, under `/pegasus/<clusterName>`; a
ZooKeeper ensemble this stack runs (`zookeeper.count` on AWS, or
`servers.zookeeper`) has that data on its own machines or directories, which
destroy removes with it, so only an ensemble of your own (`zookeeper.servers`)
keeps the path. Pegasus can rebuild the tables from the ReplicaServers' data
(its meta recovery: `[meta_server] recover_from_replica_server = true`, then
the shell's `recover -f <node list>`), which this program does not run.
"""

from __future__ import annotations

from components.spec.model import ClusterSpec

META_RECOVERY = ("Without the path, Pegasus can only rebuild the tables from the ReplicaServers' replicas by its meta "
                 "recovery ([meta_server] recover_from_replica_server = true, then the shell's `recover -f <node "
                 "list>`), which this program does not run")


def retained_data_notice(spec: ClusterSpec) -> str:
    """The notice for a stack with retainData set."""
    path = spec.cluster_root
    if spec.servers:
        kept = (f"on each ReplicaServer its data directories (<disk>/pegasus/{spec.cluster_name}), and "
                f"{spec.app_dir} on every server")
    else:
        kept = ("each ReplicaServer's data volumes (detached; the destroy lists them as retained), and nothing else "
                "of the machines")
    if spec.zookeeper.provisioned:
        zookeeper = (f"The ZooKeeper path {path} is not kept: it lives in the data of the ZooKeeper servers this "
                     "stack runs, and destroy removes them with it. To keep it, use an ensemble of your own "
                     "(zookeeper.servers)")
    else:
        zookeeper = f"{path} stays on your ZooKeeper ensemble ({', '.join(spec.zookeeper.external_servers)})"
    if spec.servers:
        back = ("`pulumi up` again on the same servers with the same clusterName, homeDir and appDir starts from "
                "what was kept: disks are used as they are (never formatted), each role keeps its config.ini and "
                "release, and this stack takes its own path back (another stack needs "
                "zookeeper.adoptExistingPath: true)")
    else:
        back = ("A new `up` makes new, blank volumes and never attaches kept ones: to read a kept volume's "
                f"replicas, attach it to a machine and mount it (they are under pegasus/{spec.cluster_name})")
    rest = "removes the rest of what it made there" if spec.servers else "deletes everything else"
    return f"retainData is set: `pulumi destroy` keeps {kept}, and {rest}. {zookeeper}. {back}. {META_RECOVERY}."
