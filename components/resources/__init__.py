"""Layer 4: the Pulumi components that make the cluster, in `PegasusCluster` (cluster.py).

Network and AWS hosts (or your own servers, listed), host preparation,
ZooKeeper, the package store, Pegasus on each server, and the operations of
layer 3 wired after them. Remote scripts come from render/; every resource is
named under the cluster's name (resource_names.py). May import every layer.
"""
