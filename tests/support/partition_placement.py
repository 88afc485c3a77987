"""Synthetic partition maps, placed the way a balanced Pegasus cluster holds its replicas.

Pegasus's default balancer (greedy_load_balancer.cpp with app_balance_policy.cpp,
v2.5.0, `balance_cluster` off) balances each table on its own: it moves primaries
and then secondaries until every ReplicaServer holds, of that table, about the
mean number of primaries and of replicas. Which servers end up sharing a
partition follows from the order of its moves and of past failures, not from
any rule; so each partition goes here to the servers holding the fewest replicas
of its table (then the fewest overall), ties broken at random (seeded), its
primary to the member holding the fewest primaries of the table.
"""

from __future__ import annotations

import random

from components.operations.roll_plan import ALIVE, ClusterMap, Partition


def node_name(index: int) -> str:
    return f"10.{index // 65536}.{index // 256 % 256}.{index % 256}:34801"


def balanced_map(servers: int, tables: int, partitions: int, replicas: int = 3, seed: int = 0) -> ClusterMap:
    rng = random.Random(seed)
    nodes = [node_name(i) for i in range(servers)]
    total = {n: 0 for n in nodes}
    placed: list[Partition] = []
    for app_id in range(1, tables + 1):
        held = {n: 0 for n in nodes}
        led = {n: 0 for n in nodes}
        for pidx in range(partitions):
            ranked = sorted(nodes, key=lambda n: (held[n], total[n], rng.random()))
            members = ranked[:replicas]
            primary = min(members, key=lambda n: (led[n], rng.random()))
            for n in members:
                held[n] += 1
                total[n] += 1
            led[primary] += 1
            placed.append(Partition(f"{app_id}.{pidx}", f"t{app_id}", primary,
                                    tuple(n for n in members if n != primary), replicas))
    return ClusterMap({n: ALIVE for n in nodes}, tuple(placed))
