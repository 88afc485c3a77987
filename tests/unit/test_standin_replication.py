"""The stand-in's two-phase commit when the primary moves with a write in flight.

Three ReplicaData objects (replica_data.py) serve their /standin/prepare endpoint over
real HTTP on loopback; the MetaServer is a dict of roles the test changes by hand, so
each interleaving is set up exactly. A write that failed when the primary moved leaves
one member ahead of another: the real replicas reconcile it (replay_prepare_list on the
new primary, a newer ballot's mutation replacing an older one in prepare_list.cpp), so
the stand-in must not remove the member, nor let the copies differ.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.unit.test_standin import load_standin, rs  # rs: the stand-in's modules are on sys.path

import replica_data  # noqa: E402  (the stand-in's module, beside rrdb_store)

GPID = (1, 0)


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a primary that gave up on a slow answer closed its end: nothing to report


class Member:
    """One ReplicaServer's replica of GPID: its data, its role, its replication port."""

    def __init__(self, name: str, tmp_path, meta: "Meta") -> None:
        self.name, self.meta = name, meta
        self.role: dict | None = None
        self.delay = 0.0  # seconds each prepare waits before its answer
        self.data = replica_data.ReplicaData(
            [str(tmp_path / name)], rs.Limits(), name, 2, role=lambda gpid: self.role,
            meta_call=lambda path: meta.call(self.name, path), set_role=self._set_role,
            prepare_timeouts=(0.3, 0.9))
        (tmp_path / name / "reps").mkdir(parents=True)
        self.data.open(GPID)
        data, member = self.data, self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                time.sleep(member.delay)
                status, body, _ = data.http_post(self.path, self.rfile.read(int(self.headers["Content-Length"])))
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.addr = ["127.0.0.1", self.server.server_address[1]]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _set_role(self, gpid, role) -> None:
        self.role = role

    @property
    def store(self) -> rs.PartitionStore:
        return self.data.store(GPID)

    def contents(self) -> tuple[int, dict]:
        return self.store.decree, dict(self.store.data)


class Meta:
    """The partition's configuration, as the MetaServer holds it and sends it to each member."""

    def __init__(self) -> None:
        self.members: dict[str, Member] = {}
        self.removed: list[str] = []
        self.ballot, self.primary, self.secondaries = 0, "", []

    def role_of(self, name: str) -> dict | None:
        if name != self.primary and name not in self.secondaries:
            return None
        return {"role": "primary" if name == self.primary else "secondary", "ballot": self.ballot,
                "app_id": 1, "pidx": 0, "app_name": "t", "replicas": 1 + len(self.secondaries),
                "secondaries": [self.members[s].addr for s in self.secondaries] if name == self.primary else [],
                "learners": []}

    def configure(self, ballot: int, primary: str, secondaries: list[str], told: list[str]) -> None:
        """A new configuration, which reaches only the members in `told` (the others still
        hold the older one, as when a proposal is on its way)."""
        self.ballot, self.primary, self.secondaries = ballot, primary, secondaries
        for name in told:
            self.members[name].role = self.role_of(name)

    def call(self, caller: str, path: str) -> dict:
        if path.startswith("/standin/remove_secondary"):
            self.removed.append(path)
            addr = path.split("addr=")[1].split("&")[0]
            gone = next(n for n, m in self.members.items() if f"{m.addr[0]}:{m.addr[1]}" == addr)
            self.configure(self.ballot + 1, self.primary, [s for s in self.secondaries if s != gone],
                           told=[self.primary, gone])
            return {"err": "ERR_OK", "role": self.role_of(caller)}
        if path.startswith("/standin/partition"):
            return {"role": self.role_of(caller)}
        raise AssertionError(f"unexpected MetaServer call {path}")


@pytest.fixture
def partition(tmp_path):
    meta = Meta()
    meta.members = {name: Member(name, tmp_path, meta) for name in ("a", "b", "c")}
    meta.configure(1, "a", ["b", "c"], told=["a", "b", "c"])
    assert meta.members["a"].data.write(GPID, rs.put_ops(rs.generate_key(b"h", b"0"), b"v0", 0)) == ("ERR_OK", 1)
    yield meta
    for member in meta.members.values():
        member.server.shutdown()
        member.data.close(GPID)


def put(meta: Meta, primary: str, sort_key: bytes) -> tuple[str, int]:
    return meta.members[primary].data.write(GPID, rs.put_ops(rs.generate_key(b"h", sort_key), sort_key, 0))


@pytest.mark.parametrize("new_primary", ["b", "c"])
def test_a_write_cut_by_a_primary_move_leaves_every_member_with_the_same_data(partition, new_primary, caplog):
    meta = partition
    caplog.set_level(logging.INFO, logger="pegasus_server")
    # The primary moves from a to new_primary at ballot 2; only c has heard of it when a
    # writes: b takes decree 2, c refuses it for its ballot, a learns it is no longer primary.
    meta.configure(2, new_primary, ["a", "b", "c"], told=["c"])
    assert put(meta, "a", b"cut") == ("ERR_INVALID_STATE", 0)
    meta.configure(2, new_primary, [m for m in "abc" if m != new_primary], told=["a", "b", "c"])
    # b (the new primary holding the cut write) re-prepares it for c; c (the new primary
    # without it) writes its own decree 2, which replaces the cut one on a and b.
    assert put(meta, new_primary, b"next") == ("ERR_OK", 3 if new_primary == "b" else 2)
    assert meta.removed == []
    replaced = [r.getMessage() for r in caplog.records if "replaced by" in r.getMessage()]
    assert len(replaced) == (2 if new_primary == "c" else 0), replaced  # on a and b, when c leads
    contents = {name: member.contents() for name, member in meta.members.items()}
    assert contents["a"] == contents["b"] == contents["c"], contents
    assert rs.get(meta.members["a"].store, rs.generate_key(b"h", b"next")) == (rs.K_OK, b"next")


def test_a_replaced_mutation_stays_replaced_after_a_restart(partition):
    meta = partition
    meta.configure(2, "c", ["a", "b"], told=["c"])
    assert put(meta, "a", b"cut") == ("ERR_INVALID_STATE", 0)
    meta.configure(2, "c", ["a", "b"], told=["a", "b", "c"])
    assert put(meta, "c", b"next") == ("ERR_OK", 2)
    b = meta.members["b"]
    decree, data = b.contents()
    assert rs.get(b.store, rs.generate_key(b"h", b"cut"))[0] == rs.K_NOT_FOUND
    directory = b.store.directory
    b.data.close(GPID)
    reopened = rs.PartitionStore(directory)
    assert (reopened.decree, reopened.data) == (decree, data)
    reopened.close()
    b.data.open(GPID)


def test_a_member_missing_mutations_the_primary_no_longer_keeps_is_removed(partition):
    meta = partition
    a = meta.members["a"]
    for decree in (2, 3):  # writes c never got, and a no longer keeps (a learned them, say)
        a.store.apply(decree, [], 1)
        meta.members["b"].store.apply(decree, [], 1)
    a.store.recent.clear()
    assert put(meta, "a", b"x") == ("ERR_OK", 4)
    assert len(meta.removed) == 1 and f"addr=127.0.0.1:{meta.members['c'].addr[1]}" in meta.removed[0]
    assert meta.secondaries == ["b"]


def test_a_secondary_slower_than_the_prepare_timeout_is_removed(partition):
    meta = partition
    meta.members["c"].delay = 0.6  # beyond prepare_timeout_ms_for_secondaries (0.3 s here)
    assert put(meta, "a", b"slow") == ("ERR_OK", 2)
    assert len(meta.removed) == 1 and f"addr=127.0.0.1:{meta.members['c'].addr[1]}" in meta.removed[0]
    meta.members["c"].delay = 0.0


def test_the_servers_take_the_prepare_timeouts_from_config_ini(tmp_path):
    standin = load_standin()
    path = tmp_path / "config.ini"
    path.write_text("[replication]\nprepare_timeout_ms_for_secondaries = 250\n"
                    "[meta_server]\nserver_list = 127.0.0.1:34601\n")
    server = standin.Replica(standin.Config(str(path)), "127.0.0.1", 34801, [], threading.Event())
    assert (server.data.prepare_timeout, server.data.learner_prepare_timeout) == (0.25, 3.0)


def test_a_store_replaces_only_its_last_mutation_and_only_while_it_can_undo_it(tmp_path):
    store = rs.PartitionStore(str(tmp_path / "1.0.pegasus"))
    key = rs.generate_key(b"h", b"k")
    store.apply(1, rs.put_ops(key, b"old", 0), ballot=1)
    store.apply(2, rs.put_ops(key, b"cut", 0), ballot=1)
    assert store.replace_last(rs.put_ops(key, b"cut", 0), 2) == "same" and store.ballot == 2
    assert store.replace_last(rs.remove_ops(key), 3) == "replaced"
    assert rs.get(store, key)[0] == rs.K_NOT_FOUND and (store.decree, store.ballot) == (2, 3)
    assert store.replace_last(rs.put_ops(key, b"new", 0), 4) == "replaced"
    assert rs.get(store, key) == (rs.K_OK, b"new")  # undone to decree 1's value each time, then applied
    assert [d for d, _, _ in store.since(0)] == [1, 2] and store.since(2) == []
    store.replace(store.snapshot())  # a learned copy: nothing left to undo
    assert store.replace_last(rs.remove_ops(key), 5) is None and store.since(0) is None
    store.close()
