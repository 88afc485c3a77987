"""What an application's client needs to find the cluster: the MetaServer list, per client.

Each of Apache's clients takes the list its own way (apache/incubator-pegasus v2.5.0):
the Java client the `meta_servers` property (java-client/.../client/ClientOptions.java,
PEGASUS_META_SERVERS_KEY, `ip:port,ip:port`); the Go client `Config.MetaServers`, a list
(go-client/pegasus/config.go, json `meta_servers`); the Python client (pypegasus3) a list
given to `Pegasus(meta_addrs, table_name)`; the shell a `[pegasus.clusters]` line
`<cluster> = ip:port,...` in its config.ini (src/shell/config.ini).
"""

from __future__ import annotations

from typing import Sequence


def client_config(cluster_name: str, meta_servers: Sequence[str]) -> dict:
    joined = ",".join(meta_servers)
    return {
        "java": f"meta_servers = {joined}",
        "go": list(meta_servers),
        "python": list(meta_servers),
        "shell": f"[pegasus.clusters]\n{cluster_name} = {joined}",
    }
