"""The grouped roll's planner: which ReplicaServers may restart together, from a partition map."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components.operations.roll_plan import (
    ALIVE,
    ClusterMap,
    MapUnreadable,
    Partition,
    RollLimits,
    colour,
    group_problems,
    parse_cluster_map,
    plan_roll,
)
from components.spec.model import default_max_parallel
from tests.support.partition_placement import balanced_map


def node(i: int) -> str:
    return f"10.0.1.{i}:34801"


def server(i: int) -> str:
    return f"replica-{i}/replica"


def cluster_of(placements: list[tuple[int, ...]], servers: int, max_replicas: int = 3,
               down: tuple[int, ...] = ()) -> ClusterMap:
    """Partition k of table t on the servers placements[k] (the first is its primary)."""
    parts = tuple(Partition(f"1.{k}", "t", node(m[0]), tuple(node(i) for i in m[1:]), max_replicas)
                  for k, m in enumerate(placements))
    return ClusterMap({node(i): "UNALIVE" if i in down else ALIVE for i in range(servers)}, parts)


def plan(placements, servers: int, cap: int = 100, rolled=None, max_replicas: int = 3, **limits):
    rolled = range(servers) if rolled is None else rolled
    keys = [server(i) for i in rolled]
    return plan_roll(keys, {server(i): node(i) for i in rolled}, cluster_of(placements, servers, max_replicas),
                     RollLimits(cap, **limits))


def indices(groups) -> list[list[int]]:
    return [[int(s.split("-")[1].split("/")[0]) for s in g] for g in groups]


# ---------------------------------------------------------------------------
# Groups


def test_servers_that_share_no_partition_restart_together_largest_group_first():
    # 6 servers, 4 partitions of 3 replicas: what the e2e cluster's stat table looks like.
    result = plan([(0, 1, 2), (3, 4, 5), (0, 3, 1), (2, 4, 5)], 6, cap=3)
    assert indices(result.groups) == [[0, 4], [1, 5], [2, 3]]
    assert result.cap == 3 and not result.one_at_a_time and result.partitions == 4


def test_no_partition_is_ever_on_two_servers_of_one_group_on_a_balanced_cluster():
    cluster = balanced_map(60, tables=4, partitions=32)
    keys = [server(i) for i in range(60)]
    node_of = dict(zip(keys, cluster.nodes))
    result = plan_roll(keys, node_of, cluster, RollLimits(8))
    assert sorted(s for g in result.groups for s in g) == sorted(keys)
    for group in result.groups:
        assert len(group) <= 8
        assert group_problems([node_of[s] for s in group], cluster) == []


def test_a_cap_smaller_than_a_colour_class_splits_it_into_groups_of_at_most_the_cap():
    # Seven servers that share nothing form one colour class; the cap cuts it.
    placements = [(i, 7, 8) for i in range(7)]  # 7 and 8 hold a replica of each but do not restart
    result = plan(placements, 9, cap=3, rolled=range(7))
    assert indices(result.groups) == [[0, 1, 2], [3, 4, 5], [6]]
    assert plan(placements, 9, cap=1, rolled=range(7)).one_at_a_time


def test_a_map_where_first_fit_in_order_needs_a_group_per_pair_takes_two():
    # Servers a0..a5 and b0..b5; a_i shares a partition with every b_j but b_i (through
    # server 12, which holds each partition and does not restart): the crown graph, where
    # first-fit in the order a0 b0 a1 b1 ... needs six groups. DSatur takes two.
    n = 6
    placements = [(i, n + j, 12) for i in range(n) for j in range(n) if i != j]
    order = [k for i in range(n) for k in (i, n + i)]
    result = plan(placements, 13, cap=100, rolled=order)
    assert sorted(indices(result.groups)) == [list(range(n)), list(range(n, 2 * n))]
    assert colour(2 * n, [set() for _ in range(2 * n)], 4) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]


def test_servers_the_map_does_not_place_share_nothing_and_join_the_first_groups():
    result = plan([(0, 1, 2)], 8, cap=3, rolled=[0, 1, 2, 5, 6])
    assert indices(result.groups) == [[0, 5, 6], [1], [2]]


# ---------------------------------------------------------------------------
# Safety first: one at a time, and why


def test_a_map_that_could_not_be_read_rolls_one_at_a_time_saying_why():
    result = plan_roll([server(0), server(1)], {}, None, RollLimits(8), "no MetaServer answered")
    assert result.one_at_a_time and indices(result.groups) == [[0], [1]]
    assert "the partition map could not be read (no MetaServer answered)" in result.describe(RollLimits(8))


def test_a_partition_already_unhealthy_rolls_one_at_a_time_naming_it():
    result = plan([(0, 1, 2), (3, 4)], 6)
    assert result.one_at_a_time
    assert "1 partitions are not fully healthy, e.g. t partition 1.1 (2 of 3 replicas)" in result.reason
    headless = cluster_of([(0, 1, 2)], 3)
    headless = ClusterMap(headless.nodes, (Partition("1.0", "t", "", (node(1), node(2)), 3),))
    assert "no primary" in plan_roll([server(0)], {server(0): node(0)}, headless, RollLimits(4)).reason


def test_a_table_of_two_replicas_would_drop_below_two_and_rolls_one_at_a_time():
    result = plan([(0, 1), (2, 3)], 4, max_replicas=2)
    assert result.one_at_a_time
    assert "fewer than 2 replicas (mutation_2pc_min_replica_count)" in result.reason
    # An operator's floor of 3 makes every 3-replica partition too thin to lose one.
    assert plan([(0, 1, 2), (3, 4, 5)], 6, min_replicas=3).one_at_a_time


def test_a_server_the_metaservers_do_not_list_rolls_alone():
    result = plan_roll([server(0), server(1)], {server(0): node(0)}, cluster_of([(0, 2, 3)], 4), RollLimits(4))
    assert result.one_at_a_time and "list no node for replica-1/replica" in result.reason


def test_groups_never_leave_fewer_alive_than_keep_the_metaserver_unfrozen():
    spread = [(i, 10, 11) for i in range(10)]  # 0..9 share nothing among them
    # 12 nodes ALIVE: the floor is max(3, 50% of 12) = 6, so 6 may be down at once.
    assert [len(g) for g in plan(spread, 12, cap=100, rolled=range(10)).groups] == [6, 4]
    # A removed node still listed UNALIVE counts in the percentage: 12 ALIVE of 13 -> 7 must stay.
    cluster = cluster_of(spread, 13, down=(12,))
    result = plan_roll([server(i) for i in range(10)], {server(i): node(i) for i in range(10)}, cluster,
                       RollLimits(100))
    assert [len(g) for g in result.groups] == [5, 5] and "node_live_percentage_threshold_for_update" in result.reason
    # Four nodes: one down leaves three, two would freeze it.
    assert plan([(0, 1, 2)], 4, cap=100, rolled=[3, 0]).one_at_a_time


def test_roll_max_parallel_defaults_to_one_server_in_ten():
    assert [default_max_parallel(n) for n in (3, 6, 19, 20, 100, 1000)] == [1, 1, 1, 2, 10, 100]


# ---------------------------------------------------------------------------
# Reading the map


def pages(release_names: bool = False):
    name = (lambda i: f"replica-{i}.internal:34801") if release_names else node
    nodes = {"details": {name(i): {"address": name(i), "status": ALIVE} for i in range(3)},
             "summary": {"alive_node_count": "3"}}
    apps = {"general_info": {"2": {"app_id": "2", "app_name": "stat", "status": "AVAILABLE"}}}
    stat = {"general": {"app_name": "stat", "app_id": "2", "partition_count": "2", "max_replica_count": "3"},
            "replicas": {"1": {"pidx": "1", "ballot": "4", "replica_count": "2/3", "primary": "-",
                               "secondaries": f"[{name(0)},{name(2)}]"},
                         "0": {"pidx": "0", "ballot": "3", "replica_count": "3/3", "primary": name(0),
                               "secondaries": f"[{name(1)},{name(2)}]"}}}
    return nodes, apps, {"stat": stat}


@pytest.mark.parametrize("release_names", [False, True])
def test_the_map_is_read_from_the_metaservers_pages_as_each_release_writes_them(release_names):
    cluster = parse_cluster_map(*pages(release_names))
    host = "replica-0.internal:34801" if release_names else node(0)
    assert [p.gpid for p in cluster.partitions] == ["2.0", "2.1"]
    first, second = cluster.partitions
    assert first.primary == host and len(first.secondaries) == 2 and first.healthy
    assert second.primary == "" and second.members == second.secondaries and not second.healthy
    assert cluster.alive == 3


def test_a_table_without_its_page_or_a_page_of_another_shape_is_unreadable():
    nodes, apps, tables = pages()
    with pytest.raises(MapUnreadable, match="no answer for table stat"):
        parse_cluster_map(nodes, apps, {})
    with pytest.raises(MapUnreadable, match="not a partition table"):
        parse_cluster_map(nodes, apps, {"stat": {"general": {}}})
    with pytest.raises(MapUnreadable):
        parse_cluster_map("table not found", apps, tables)


# ---------------------------------------------------------------------------
# Properties over any map


@st.composite
def maps(draw):
    servers = draw(st.integers(min_value=3, max_value=24))
    count = draw(st.integers(min_value=0, max_value=40))
    placements = [tuple(draw(st.permutations(range(servers)))[:3]) for _ in range(count)]
    rolled = draw(st.lists(st.integers(0, servers - 1), unique=True, min_size=1))
    cap = draw(st.integers(min_value=1, max_value=servers))
    return placements, servers, rolled, cap


@settings(max_examples=300, deadline=None)
@given(maps())
def test_every_plan_restarts_each_server_once_in_safe_groups_within_the_cap(case):
    placements, servers, rolled, cap = case
    cluster = cluster_of(placements, servers)
    result = plan(placements, servers, cap=cap, rolled=rolled)
    assert sorted(s for g in result.groups for s in g) == sorted(server(i) for i in rolled)
    assert all(1 <= len(g) <= max(1, result.cap) <= cap for g in result.groups)
    assert [len(g) for g in result.groups] == sorted((len(g) for g in result.groups), reverse=True)
    for group in result.groups:
        assert group_problems([node(i) for i in indices([group])[0]], cluster) == []
    # Never below what keeps the MetaServer unfrozen (one at a time is the floor of any roll).
    if len(result.groups[0]) > 1:
        assert servers - len(result.groups[0]) >= max(3, (servers + 1) // 2)
