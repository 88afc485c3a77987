"""Steady reads and writes through Apache Pegasus's Python client, counted as applications see them.

Runs on an application machine with pypegasus3 (PyPI) and Twisted on PYTHONPATH, and
rdsn_thrift.py beside it (to create the table and watch its partitions):

    python3 availability_load.py --metas 10.0.0.1:34601,10.0.0.2:34601 --table availability \\
        --partitions 8 --stop-file /root/stop-load --out /root/load.json [--seconds 600]

1. Creates the table (RPC_CM_CREATE_APP, 3 replicas, success_if_exist: a second run
   reuses it) and waits until each of its partitions has all three.
2. One writer per partition (a hash key that hashes to it, as the client computes it:
   pgclient.py PegasusHash, crc64 % partition count): put a new sort key, then get it,
   every --interval seconds, until the stop file exists.
3. Every operation is first sent once through pypegasus3 as an application calls it
   (`errors`: what that first try returns that is not ERR_OK; pypegasus3 retries
   nothing, pgclient.py: a failed call goes to the caller, and update_state only marks
   the table for a new configuration query at the next META_CHECK_INTERVAL, 2 s).
   An operation that failed is then retried as Apache's Java client retries it
   (`failed`: still failing when its 5 s operation timeout ends), read in
   java-client/src/main/java/org/apache/pegasus/rpc/async/TableHandler.java at v2.5.0:
   onRpcReply queries the MetaServer and retries on ERR_SESSION_RESET,
   ERR_OBJECT_NOT_FOUND, ERR_INVALID_STATE and ERR_PARENT_PARTITION_MISUSED, retries
   without a query on ERR_NOT_ENOUGH_MEMBER and ERR_CAPACITY_EXCEEDED, gives up on
   ERR_TIMEOUT and anything else; call() with no primary known queries and retries;
   tryDelayCall waits ClusterManager.getRetryDelay = timeout / 3 between tries and
   retries only while more than that delay is left. (The Go client, go-client/pegasus/
   table_connector.go handleReplicaError and retry_failover.go at v2.5.0 and master,
   retries fewer: ERR_INVALID_STATE goes to the caller after a configuration update.)
   pypegasus3 does not notice a closed connection (TPegasusThriftClientProtocol swallows
   connectionLost; a request written to it times out): where its session's connection
   is gone, the first try counts as an error at once and the retries see it as the Java
   client's ERR_SESSION_RESET. The retries use a second pypegasus3 client, so that the
   first tries see only what pypegasus3 itself does.
4. At the end, every acknowledged write is read back (retried the same way): `lost`
   counts those not there with their value; `unreadable` those that could not be read.
   `below_two`: partitions ever seen (every 0.5 s) with fewer than 2 replicas.

Writes JSON: {"total", "errors", "failed", "lost", "unreadable", "below_two", "acked",
"error_names", "failed_names", "partitions", "samples": the first failed operations as
[seconds into the load, wall clock, op, hash key, first error, last error]}.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
import time

from twisted.internet import defer, reactor, task
from twisted.internet.defer import inlineCallbacks

import rdsn_thrift as rt
from pypegasus.base.ttypes import error_types
from pypegasus.pgclient import Pegasus, PegasusHash

REPLICAS = 3  # the table's replica count (the deployment guide's)
OPERATION_TIMEOUT_MS = 5000  # the Java client's operation timeout the figures are taken with
RETRY_DELAY = OPERATION_TIMEOUT_MS / 3 / 1000  # ClusterManager.getRetryDelay (v2.5.0)
QUERY_AND_RETRY = {"ERR_SESSION_RESET", "ERR_OBJECT_NOT_FOUND", "ERR_INVALID_STATE",
                   "ERR_PARENT_PARTITION_MISUSED", "ERR_NO_PRIMARY"}
RETRY = {"ERR_NOT_ENOUGH_MEMBER", "ERR_CAPACITY_EXCEEDED"}
OK, NOT_FOUND = error_types.ERR_OK.value, error_types.ERR_OBJECT_NOT_FOUND.value

log = logging.getLogger("availability")


# ------------------------------------------------------------------ the MetaServer, by thrift

def meta_call(metas: list[str], name: str, argument, response_cls):
    """Sends one request to each MetaServer in turn; the first answer that is not
    ERR_FORWARD_TO_OTHERS."""
    last = "no MetaServer answered"
    for meta in metas:
        host, port = meta.rsplit(":", 1)
        try:
            with socket.create_connection((host, int(port)), timeout=5) as sock:
                sock.sendall(rt.encode_request(name, 1, argument))
                reply = rt.read_reply(rt.socket_reader(sock))
        except OSError as e:
            last = f"{meta}: {e}"
            continue
        if reply is None or reply.error != "ERR_OK":
            last = f"{meta}: {reply.error if reply else 'closed'}"
            continue
        response = reply.result(response_cls)
        if response.err.name == "ERR_FORWARD_TO_OTHERS":
            last = f"{meta}: not the leader"
            continue
        return response
    raise OSError(last)


def create_table(metas: list[str], table: str, partitions: int, replicas: int) -> int:
    request = rt.CreateAppRequest(app_name=table, options=rt.CreateAppOptions(
        partition_count=partitions, replica_count=replicas, success_if_exist=True, app_type="pegasus",
        is_stateful=True, envs={}))
    deadline = time.monotonic() + 120
    while True:
        try:
            response = meta_call(metas, "RPC_CM_CREATE_APP", request, rt.CreateAppResponse)
            if response.err.name == "ERR_OK":
                return response.appid
            why = response.err.name
        except OSError as e:
            why = str(e)
        if time.monotonic() > deadline:
            raise SystemExit(f"cannot create table {table}: {why}")
        time.sleep(1)


def replica_counts(metas: list[str], table: str) -> dict[int, int]:
    response = meta_call(metas, "RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX",
                         rt.QueryCfgRequest(app_name=table, partition_indices=[]), rt.QueryCfgResponse)
    if response.err.name != "ERR_OK":
        raise OSError(response.err.name)
    return {p.pid.pidx: (1 if p.primary.ip else 0) + len(p.secondaries) for p in response.partitions}


# ------------------------------------------------------------------ the load

def hash_keys(partitions: int) -> dict[int, str]:
    """A hash key per partition (pgclient.py get_gpid: crc64 of the hash key % count)."""
    PegasusHash.populate_table()
    keys: dict[int, str] = {}
    i = 0
    while len(keys) < partitions:
        candidate = f"hk{i}"
        pidx = PegasusHash.default_hash(candidate.encode()) % partitions
        keys.setdefault(pidx, candidate)
        i += 1
    return keys


def error_name(result) -> str:
    """What a pypegasus3 call returned, as an error name ("ERR_OK" for success)."""
    if isinstance(result, error_types):  # recv_ACK: an RPC error is returned bare
        return result.name
    if isinstance(result, tuple) and result and isinstance(result[0], int):
        try:
            return error_types(result[0]).name
        except ValueError:
            return f"rocksdb error {result[0]}"
    return f"unexpected result {result!r}"


def session_of(client: Pegasus, hash_key: str, sort_key: str):
    """The session pypegasus3 sends this key's request on (None: it has none)."""
    return client.table.partition_dict and client.table.session_dict.get(
        client.table.partition_dict.get(client.table.get_gpid(client.generate_key(hash_key, sort_key)).get_pidx()))


def connection_gone(session) -> bool:
    """Whether a session's TCP connection is closed or closing: a request written there
    gets no answer (update_cfg also closes sessions it replaces)."""
    transport = getattr(getattr(session, "_transport", None), "_TPegasusTransport__trans", None)
    return transport is not None and (not getattr(transport, "connected", 1) or
                                       bool(getattr(transport, "disconnecting", False)))


class Load:
    def __init__(self, args) -> None:
        self.args = args
        self.metas = args.metas.split(",")
        self.naive = Pegasus(self.metas, args.table, OPERATION_TIMEOUT_MS)
        self.retrier = Pegasus(self.metas, args.table, OPERATION_TIMEOUT_MS)
        self.stats = {"total": 0, "errors": 0, "failed": 0, "lost": 0, "unreadable": 0, "acked": 0,
                      "error_names": {}, "failed_names": {}, "below_two": [], "partitions": args.partitions,
                      "samples": []}
        self.started = time.monotonic()
        self.acked: dict[tuple[str, str], str] = {}
        self.below_two: set[int] = set()
        self.stopping = False
        self.retrier_since = 0.0  # when the retrier's configuration was asked for
        self._refreshing: defer.Deferred | None = None

    def refresh(self, failed_at: float) -> defer.Deferred:
        """The Java client's tryQueryMeta: one configuration query at a time, none when one
        newer than the failure exists. A new configuration gets new sessions (a new
        pypegasus3 client): its update_cfg would close sessions other retries still wait on."""
        if self.retrier_since > failed_at:
            return defer.succeed(None)
        if self._refreshing is None:
            self._refreshing = self._refresh()
        done = defer.Deferred()
        self._refreshing.addBoth(lambda result: (done.callback(None), result)[1])
        return done

    @inlineCallbacks
    def _refresh(self):
        asked = time.monotonic()
        client = Pegasus(self.metas, self.args.table, OPERATION_TIMEOUT_MS)
        try:
            yield client.init()
        finally:
            old, self.retrier, self.retrier_since = self.retrier, client, asked
            reactor.callLater(2 * OPERATION_TIMEOUT_MS / 1000, old.close)
            self._refreshing = None

    @inlineCallbacks
    def once(self, client: Pegasus, op: str, hash_key: str, sort_key: str, value: str):
        """One try: (error name, value read)."""
        session = session_of(client, hash_key, sort_key)
        if op == "put":
            call = client.set(hash_key, sort_key, value)
        else:
            call = client.get(hash_key, sort_key)
        if not isinstance(call, defer.Deferred):  # no session for the partition: returned at once
            return "ERR_NO_PRIMARY", None
        gone, answered = defer.Deferred(), []
        call.addBoth(lambda result: (answered.append(True), result)[1])  # (`called` is set at once: chained)

        def watch():
            if not gone.called and not answered and connection_gone(session):
                gone.callback(None)
        watcher = task.LoopingCall(watch)
        watcher.start(0.05, now=True)
        try:
            first, index = yield defer.DeferredList([call, gone], fireOnOneCallback=True, fireOnOneErrback=True,
                                                    consumeErrors=True)
        except defer.FirstError as e:
            return f"exception {e.subFailure.value!r}", None
        finally:
            watcher.stop()
        if index == 1:
            return "ERR_SESSION_RESET", None
        name = error_name(first)
        read = first[1] if name == "ERR_OK" and op == "get" else None
        if op == "get" and name == "ERR_OBJECT_NOT_FOUND":
            return "ERR_OK", None  # the RPC succeeded: the key is not there
        return name, read

    @inlineCallbacks
    def operate(self, op: str, hash_key: str, sort_key: str, value: str = "", count: bool = True):
        """(succeeded, value read): the first try, then the Java client's retries."""
        started = time.monotonic()
        name, read = yield self.once(self.naive, op, hash_key, sort_key, value)
        if count:
            self.stats["total"] += 1
        if name == "ERR_OK":
            return True, read
        if count:
            self.stats["errors"] += 1
            self.stats["error_names"][name] = self.stats["error_names"].get(name, 0) + 1
        first = name
        deadline = started + OPERATION_TIMEOUT_MS / 1000
        while (name in QUERY_AND_RETRY or name in RETRY) and deadline - time.monotonic() > RETRY_DELAY:
            failed_at = time.monotonic()
            if name in QUERY_AND_RETRY:
                yield self.refresh(failed_at)
            yield task.deferLater(reactor, max(0.0, RETRY_DELAY - (time.monotonic() - failed_at)), lambda: None)
            name, read = yield self.once(self.retrier, op, hash_key, sort_key, value)
            if name == "ERR_OK":
                return True, read
        if count:
            self.stats["failed"] += 1
            self.stats["failed_names"][name] = self.stats["failed_names"].get(name, 0) + 1
            if len(self.stats["samples"]) < 100:  # when and where, to read beside the servers' logs
                self.stats["samples"].append([round(started - self.started, 2), time.strftime("%H:%M:%S"), op,
                                              hash_key, first, name])
        return False, None

    @inlineCallbacks
    def writer(self, hash_key: str):
        n = 0
        while not self.stopping:
            sort_key, value = f"{n:08d}", f"{hash_key}-{n}-{os.getpid()}"
            ok, _ = yield self.operate("put", hash_key, sort_key, value)
            if ok:
                self.acked[(hash_key, sort_key)] = value
            yield self.operate("get", hash_key, sort_key)
            n += 1
            yield task.deferLater(reactor, self.args.interval, lambda: None)

    def watch_replicas(self) -> None:
        try:
            counts = replica_counts(self.metas, self.args.table)
        except OSError as e:
            log.warning("cannot read the partition configuration: %s", e)
            return
        self.below_two |= {p for p, count in counts.items() if count < 2}

    @inlineCallbacks
    def run(self):
        yield self.naive.init()
        yield self.retrier.init()
        keys = hash_keys(self.args.partitions)
        watcher = task.LoopingCall(lambda: reactor.callInThread(self.watch_replicas))
        watcher.start(0.5)
        ended = time.monotonic() + self.args.seconds

        def stop_requested():
            return os.path.exists(self.args.stop_file) or time.monotonic() > ended
        writers = [self.writer(keys[p]) for p in sorted(keys)]
        while not stop_requested():
            yield task.deferLater(reactor, 0.2, lambda: None)
        self.stopping = True
        yield defer.DeferredList(writers)
        watcher.stop()
        # Every acknowledged write, read back (retried as the Java client retries).
        for (hash_key, sort_key), value in sorted(self.acked.items()):
            ok, read = yield self.operate("get", hash_key, sort_key, count=False)
            if not ok:
                self.stats["unreadable"] += 1
            elif read is None or read.decode() != value:
                self.stats["lost"] += 1
                log.error("lost: %s/%s should be %r, read %r", hash_key, sort_key, value, read)
        self.stats["acked"] = len(self.acked)
        self.stats["below_two"] = sorted(self.below_two)
        self.naive.close()
        self.retrier.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--metas", required=True)
    parser.add_argument("--table", default="availability")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--stop-file", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    metas = args.metas.split(",")
    app_id = create_table(metas, args.table, args.partitions, REPLICAS)
    deadline = time.monotonic() + 120
    while True:
        try:
            counts = replica_counts(metas, args.table)
            if len(counts) == args.partitions and all(c >= REPLICAS for c in counts.values()):
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"table {args.table} (app {app_id}) is not fully healthy after 120 s")
        time.sleep(0.5)
    load = Load(args)
    outcome: dict = {}

    @inlineCallbacks
    def go():
        try:
            yield load.run()
            outcome["stats"] = load.stats
        except Exception as e:  # noqa: BLE001 - reported in the output file
            log.exception("the load failed")
            outcome["error"] = repr(e)
        finally:
            reactor.stop()
    reactor.callWhenRunning(go)
    reactor.run()
    with open(args.out + ".tmp", "w", encoding="utf-8") as f:
        json.dump(outcome.get("stats") or {"error": outcome.get("error", "no result")}, f)
    os.replace(args.out + ".tmp", args.out)
    return 0 if "stats" in outcome else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
