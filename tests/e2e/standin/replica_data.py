"""A ReplicaServer's replicas: their data on the data dirs, writes by two-phase commit, learning.

Modelled on apache/incubator-pegasus v2.5.0 (src/replica/replica_2pc.cpp,
replica_learn.cpp, replica_stub.cpp, src/common/fs_manager.cpp), simplified where
the stand-in's MetaServer is:

- A replica lives in `<data dir>/reps/<app_id>.<pidx>.pegasus` (the data dir holding
  the fewest replicas of that table, then of all: find_best_dir_for_new_replica).
  A restarted server opens every replica it finds there; they serve nothing until
  the MetaServer assigns them again.
- A write is a mutation with the next decree: the primary sends it to every
  secondary (prepare) and acknowledges the client once each has logged and applied
  it. A secondary that does not answer is removed from the partition through the
  MetaServer (remove_replica_on_meta_server); the write then commits if enough
  members remain (mutation_2pc_min_replica_count), else the client gets no answer
  (its request times out, as the real mutation waits in the prepare list).
- The primary logs each mutation it sent, whatever the answers: a decree is never
  reused. When the primary moves while a write is in flight, some members may hold
  that uncommitted mutation and others not: the new primary re-prepares its own
  (replica_config.cpp replay_prepare_list) to a member that missed it, and its
  mutation for a decree replaces an older primary's at that decree on the member
  (prepare_list.cpp prepare, mutation_cache.cpp put: the higher ballot wins).
- A replica the MetaServer adds is a learner (a potential secondary, not yet listed
  as a secondary): the primary stops writes on the partition, copies its data to
  the learner, and has the MetaServer make it a secondary (upgrade_to_secondary),
  so a secondary always holds every acknowledged write: the data survives a
  primary moving, a restart and a reboot, and is lost only with every replica.

The replication messages between stand-in servers are JSON over HTTP POST on the
replica port (test-double endpoints, not Pegasus's RPC_PREPARE / RPC_LEARN):
  /standin/prepare  {"gpid": "A.P", "ballot": b, "decree": d, "ops": [...]}
                    200 applied | 409 {"error": ...} refused (stale ballot, a mutation it
                    cannot replace), or {"error", "decree"}: it missed the ones after "decree"
  /standin/learn    {"gpid": "A.P", "ballot": b, "snapshot": {"decree": d, "data": [...]}}
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import threading
from typing import Callable

from rrdb_store import Limits, PartitionStore

log = logging.getLogger("pegasus_server")
REPLICA_DIR = re.compile(r"^(\d+)\.(\d+)\.pegasus$")


def gpid_text(gpid: tuple[int, int]) -> str:
    return f"{gpid[0]}.{gpid[1]}"


def post_json(addr: tuple[str, int] | list, path: str, body: dict, timeout: float) -> tuple[int, dict]:
    conn = http.client.HTTPConnection(addr[0], int(addr[1]), timeout=timeout)
    try:
        conn.request("POST", path, body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        data = response.read()
        try:
            return response.status, json.loads(data or b"{}")
        except ValueError:
            return response.status, {"error": data.decode(errors="replace")}
    finally:
        conn.close()


class ReplicaData:
    """The replicas this ReplicaServer holds. `meta_call(path)` asks the leading
    MetaServer (returns its JSON answer); `role(gpid)` is the partition's entry of the
    latest configuration this server has ({"role", "ballot", "replicas",
    "secondaries", "learners"}), None when it holds no role; `set_role(gpid, entry)` takes
    the entry the MetaServer answered to a change this server asked for."""

    def __init__(self, data_dirs: list[str], limits: Limits, me: str, min_replicas: int,
                 role: Callable[[tuple[int, int]], dict | None], meta_call: Callable[[str], dict],
                 set_role: Callable[[tuple[int, int], dict], None],
                 prepare_timeouts: tuple[float, float] = (1.0, 3.0)) -> None:
        self.data_dirs, self.limits, self.me = data_dirs, limits, me
        self.min_replicas = min_replicas
        self.role, self.meta_call, self.set_role = role, meta_call, set_role
        self.lock = threading.Lock()
        self.stores: dict[tuple[int, int], PartitionStore] = {}
        self.write_locks: dict[tuple[int, int], threading.Lock] = {}
        self.teaching: set[tuple[tuple[int, int], str]] = set()
        # [replication] prepare_timeout_ms_for_secondaries, _for_potential_secondaries
        # (replica_2pc.cpp at v2.5.0: 1000 and 3000 ms by default)
        self.prepare_timeout, self.learner_prepare_timeout = prepare_timeouts

    # -- replicas on disk
    def existing(self) -> list[tuple[int, int]]:
        found = []
        for data_dir in self.data_dirs:
            try:
                names = os.listdir(os.path.join(data_dir, "reps"))
            except OSError:
                continue
            for name in names:
                match = REPLICA_DIR.match(name)
                if match:
                    found.append((int(match.group(1)), int(match.group(2))))
        return found

    def _directory(self, gpid: tuple[int, int]) -> str:
        name = f"{gpid[0]}.{gpid[1]}.pegasus"
        for data_dir in self.data_dirs:
            if os.path.isdir(os.path.join(data_dir, "reps", name)):
                return os.path.join(data_dir, "reps", name)

        def counts(data_dir: str) -> tuple[int, int]:
            names = [n for n in os.listdir(os.path.join(data_dir, "reps")) if REPLICA_DIR.match(n)]
            return sum(1 for n in names if n.startswith(f"{gpid[0]}.")), len(names)
        return os.path.join(min(self.data_dirs, key=counts), "reps", name)

    def open(self, gpid: tuple[int, int]) -> PartitionStore:
        with self.lock:
            store = self.stores.get(gpid)
            if store is None:
                store = self.stores[gpid] = PartitionStore(self._directory(gpid), self.limits)
                self.write_locks.setdefault(gpid, threading.Lock())
                log.info("%s: replica opened at %s (decree %d)", gpid_text(gpid), store.directory, store.decree)
            return store

    def store(self, gpid: tuple[int, int]) -> PartitionStore | None:
        with self.lock:
            return self.stores.get(gpid)

    def close(self, gpid: tuple[int, int]) -> None:
        with self.lock:
            store = self.stores.pop(gpid, None)
        if store is not None:
            store.close()

    # -- the primary's write path
    def write(self, gpid: tuple[int, int], ops: list) -> tuple[str, int]:
        """Commits one mutation: ("ERR_OK", decree); ("ERR_INVALID_STATE", 0) when this
        server is no longer the primary; ("ERR_NOT_ENOUGH_MEMBER", 0) with too few
        replicas; ("", 0) when the client gets no answer (the write waits for members)."""
        lock = self.write_locks.setdefault(gpid, threading.Lock())
        with lock:
            role = self.role(gpid)
            store = self.store(gpid)
            if not role or role["role"] != "primary" or store is None:
                return "ERR_INVALID_STATE", 0
            if 1 + len(role["secondaries"]) < self.min_replicas:
                return "ERR_NOT_ENOUGH_MEMBER", 0
            decree = store.decree + 1
            failed = self._prepare(gpid, role, store, decree, ops)
            if any("ballot" in str(why) for _, why in failed):
                # A secondary knows a newer configuration than this primary (the stand-in's
                # MetaServer tells each node on its own beacons, where the real one goes through
                # the primary): take the newer one, and prepare again.
                old_ballot = role["ballot"]
                role = self._refresh_role(gpid)
                if not role or role["role"] != "primary":
                    # The mutation stays in this replica's log, as in the real prepare list; a
                    # newer primary's mutation for the same decree replaces it (prepare below).
                    store.apply(decree, ops, old_ballot)
                    return "ERR_INVALID_STATE", 0
                failed = self._prepare(gpid, role, store, decree, ops)
            # Logged and applied here whatever the secondaries answered: the decree is taken
            # (the real primary logs its mutation beside the prepares), so the next write
            # never reuses it with other data.
            store.apply(decree, ops, role["ballot"])
            if failed:
                role = self._remove_secondaries(gpid, role, failed)
                if not role or role["role"] != "primary":
                    return "ERR_INVALID_STATE", 0
                if 1 + len(role["secondaries"]) < self.min_replicas:
                    log.warning("%s: decree %d waits: %d replica(s) left", gpid_text(gpid), decree,
                                1 + len(role["secondaries"]))
                    return "", 0
            return "ERR_OK", decree

    def _send(self, addr, message: dict, timeout: float | None = None) -> tuple[int, dict]:
        try:
            return post_json(addr, "/standin/prepare", message, timeout or self.prepare_timeout)
        except (OSError, http.client.HTTPException) as e:
            return 0, {"error": str(e)}

    def _prepare(self, gpid: tuple[int, int], role: dict, store: PartitionStore, decree: int, ops: list) -> list:
        """Sends the mutation to every secondary (and the learners, who may miss it); returns
        the secondaries that did not take it, with why. A secondary that missed earlier
        mutations (a write that failed when the primary moved) gets them first, as a new
        primary re-prepares its uncommitted ones (replica_config.cpp replay_prepare_list)."""
        message = {"gpid": gpid_text(gpid), "ballot": role["ballot"], "decree": decree, "ops": ops}
        failed = []
        for addr in role["secondaries"]:
            status, answer = self._send(addr, message)
            missing = store.since(answer["decree"]) if status == 409 and "decree" in answer else None
            if missing:
                log.info("%s: re-preparing decrees %d-%d to %s:%s, which missed them", gpid_text(gpid),
                         missing[0][0], missing[-1][0], addr[0], addr[1])
                for earlier, _ballot, earlier_ops in missing:
                    status, answer = self._send(addr, {**message, "decree": earlier, "ops": earlier_ops})
                    if status != 200:
                        break
                else:
                    status, answer = self._send(addr, message)
            if status != 200:
                failed.append((addr, answer.get("error", status)))
        for _node, addr in role.get("learners", []):  # learners take new writes while they learn
            self._send(addr, message, self.learner_prepare_timeout)
        return failed

    def _refresh_role(self, gpid: tuple[int, int]) -> dict | None:
        try:
            answer = self.meta_call(f"/standin/partition?gpid={gpid_text(gpid)}&node={self.me}")
        except (OSError, http.client.HTTPException, ValueError) as e:
            log.warning("%s: the MetaServer did not answer: %s", gpid_text(gpid), e)
            return None
        role = answer.get("role")
        self.set_role(gpid, role)
        return role

    def _remove_secondaries(self, gpid: tuple[int, int], role: dict, failed: list) -> dict | None:
        for addr, why in failed:
            log.warning("%s: prepare to %s:%s failed (%s): removing it from the partition", gpid_text(gpid),
                        addr[0], addr[1], why)
            try:
                answer = self.meta_call(f"/standin/remove_secondary?gpid={gpid_text(gpid)}&primary={self.me}"
                                        f"&addr={addr[0]}:{addr[1]}&ballot={role['ballot']}")
            except (OSError, http.client.HTTPException, ValueError) as e:
                log.warning("%s: the MetaServer did not answer: %s", gpid_text(gpid), e)
                return None
            if answer.get("err") != "ERR_OK":
                log.warning("%s: the MetaServer refused the removal: %s", gpid_text(gpid), answer)
                return None
            role = answer.get("role")
            if not role:
                return None
            self.set_role(gpid, role)
        return role

    # -- the secondary's side
    def prepare(self, message: dict) -> tuple[int, dict]:
        gpid = tuple(int(x) for x in message["gpid"].split("."))
        role = self.role(gpid)
        if role and message["ballot"] < role["ballot"]:
            return 409, {"error": f"ERR_INVALID_STATE: ballot {message['ballot']} < {role['ballot']}"}
        store = self.store(gpid)
        if store is None:
            return 409, {"error": "ERR_OBJECT_NOT_FOUND: no such replica here"}
        decree, ballot = message["decree"], message["ballot"]
        with store.lock:
            if decree < store.decree or (decree == store.decree and ballot <= store.ballot):
                return 200, {"decree": store.decree}  # committed already, or this very mutation again
            if decree == store.decree:
                # This replica's last mutation came from an older primary that never committed
                # it; the newer primary's mutation for that decree wins (mutation_cache.cpp put).
                last_ballot = store.ballot
                outcome = store.replace_last(message["ops"], ballot)
                if outcome is None:
                    return 409, {"error": f"ERR_INVALID_STATE: decree {decree} of ballot {last_ballot} "
                                          "cannot be replaced here"}
                if outcome == "replaced":
                    log.info("%s: decree %d of ballot %d replaced by the one of ballot %d", message["gpid"],
                             decree, last_ballot, ballot)
                return 200, {"decree": store.decree}
            if decree != store.decree + 1:
                return 409, {"error": f"ERR_INVALID_STATE: decree {decree} after {store.decree}",
                             "decree": store.decree}
            store.apply(decree, message["ops"], ballot)
        return 200, {"decree": store.decree}

    def learn(self, message: dict) -> tuple[int, dict]:
        gpid = tuple(int(x) for x in message["gpid"].split("."))
        role = self.role(gpid)
        if role and message["ballot"] < role["ballot"]:
            return 409, {"error": f"ERR_INVALID_STATE: ballot {message['ballot']} < {role['ballot']}"}
        self.open(gpid).replace(message["snapshot"])
        log.info("%s: learned %d records up to decree %d", message["gpid"], len(message["snapshot"]["data"]),
                 message["snapshot"]["decree"])
        return 200, {}

    def http_post(self, path: str, body: bytes):
        try:
            message = json.loads(body)
        except ValueError:
            return 400, {"error": "not JSON"}, None
        if path == "/standin/prepare":
            return (*self.prepare(message), None)
        if path == "/standin/learn":
            return (*self.learn(message), None)
        return 404, "Not Found", None

    # -- the primary teaches learners
    def teach(self, gpid: tuple[int, int], learners: list[tuple[str, list]]) -> None:
        """For each (node, addr) learner of a partition this server leads, once at a time."""
        for node, addr in learners:
            key = (gpid, node)
            with self.lock:
                if key in self.teaching:
                    continue
                self.teaching.add(key)
            threading.Thread(target=self._teach, args=(gpid, node, addr), daemon=True,
                             name=f"learn-{gpid_text(gpid)}").start()

    def _teach(self, gpid: tuple[int, int], node: str, addr: list) -> None:
        try:
            with self.write_locks.setdefault(gpid, threading.Lock()):  # no write while it copies
                role, store = self.role(gpid), self.store(gpid)
                if not role or role["role"] != "primary" or store is None:
                    return
                status, answer = post_json(addr, "/standin/learn", {
                    "gpid": gpid_text(gpid), "ballot": role["ballot"], "snapshot": store.snapshot()}, 10.0)
                if status != 200:
                    log.warning("%s: learner %s refused: %s", gpid_text(gpid), node, answer)
                    return
                answer = self.meta_call(f"/standin/learner_ready?gpid={gpid_text(gpid)}&primary={self.me}"
                                        f"&node={node}&ballot={role['ballot']}")
                if answer.get("err") == "ERR_OK" and answer.get("role"):
                    self.set_role(gpid, answer["role"])
                log.info("%s: learner %s is %s", gpid_text(gpid), node,
                         "a secondary" if answer.get("err") == "ERR_OK" else f"not upgraded: {answer}")
        except (OSError, http.client.HTTPException, ValueError) as e:
            log.warning("%s: teaching %s failed: %s", gpid_text(gpid), node, e)
        finally:
            with self.lock:
                self.teaching.discard((gpid, node))
