"""The client side of a role's TCP port: rDSN's thrift RPC beside HTTP, as Pegasus serves it.

Every role listens on one TCP port (`[apps.<role>] ports`); the first 4 bytes of a
connection choose its parser (rpc_session::prepare_parser, network.cpp, v2.5.0):
"THFT" thrift RPC (rdsn_thrift.py), "GET " or "POST" HTTP (http_server.cpp), anything
else is logged ("invalid header type") and the connection closed ("RDSN", rDSN's
native header, is not modelled here and closes too). Requests of one connection are
served concurrently, one worker per partition (thread_hash, as rDSN's pools), and
answered in the order each finishes.

MetaServer (meta_service.cpp, server_state.cpp at v2.5.0; same at v2.4.0 and master):
  RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX  query_cfg_request -> query_cfg_response:
      the table's partitions (those asked, or all when none of the asked exists),
      each with ballot, primary, secondaries, last_drops (master adds hp_* host:port
      fields); unknown table ERR_OBJECT_NOT_FOUND (in the response's err); a MetaServer
      that does not lead answers ERR_FORWARD_TO_OTHERS with the leader's address as
      partitions[0].primary (thrift requests cannot be forwarded: check_leader).
  RPC_CM_CREATE_APP  configuration_create_app_request -> configuration_create_app_response:
      ERR_STATE_FREEZED at a function level <= freezed, ERR_INVALID_PARAMETERS for a
      partition count <= 0 or a replica count outside [1, 5] or above the alive
      ReplicaServers, ERR_APP_EXIST (or, with success_if_exist, ERR_OK when the options
      match and ERR_INVALID_PARAMETERS when not), else a new table (ERR_OK, appid).
  A request with a table id (app_id > 0) in its header aborts the MetaServer
  (service_app::on_intercepted_request: CHECK(false, "not supported")).
ReplicaServer (replica_stub.cpp, replica.cpp, replica_2pc.cpp, pegasus_server_impl.cpp):
  every rrdb RPC the Python client sends: RPC_RRDB_RRDB_PUT, _MULTI_PUT, _REMOVE,
  _MULTI_REMOVE, _GET, _MULTI_GET, _TTL, _SORTKEY_COUNT, _GET_SCANNER, _SCAN and the
  one-way _CLEAR_SCANNER (rrdb_store.py for their semantics). Errors, as an RPC error
  with no body: ERR_OBJECT_NOT_FOUND when this server has no open replica of the
  partition (none, or closing); ERR_INVALID_STATE when the replica is not the
  primary (inactive, a learner, a secondary: reads too, unless the request is a
  backup request, which a secondary serves); for writes ERR_NOT_ENOUGH_MEMBER with
  fewer than mutation_2pc_min_replica_count replicas. Not modelled (answered
  ERR_HANDLER_NOT_FOUND): incr, check_and_set, check_and_mutate, batch_get.
Both: an rpc name no task code has, and a request without a table id on the
  ReplicaServer, get ERR_HANDLER_NOT_FOUND (rpc_engine::on_recv_request); the
  reply is named after the request with "_ACK".

Hook for metrics: `add_request_hook(fn)` registers fn(table, rpc_name, error), called
once per thrift request this process answered or served without an answer
(table: the table's name where the server knows it, else ""; error: the RPC's
error name, "" for a one-way request or a write left unanswered). `REQUESTS`
counts them per (table, rpc_name).
"""

from __future__ import annotations

import collections
import logging
import os
import queue
import socket
import threading
import time
from http.server import ThreadingHTTPServer
from typing import Callable

import rdsn_thrift as rt
import rrdb_store as rs

log = logging.getLogger("pegasus_server")

RRDB = "RPC_RRDB_RRDB_"
RRDB_WRITES = {f"{RRDB}{n}" for n in ("PUT", "MULTI_PUT", "REMOVE", "MULTI_REMOVE", "INCR", "CHECK_AND_SET",
                                      "CHECK_AND_MUTATE", "DUPLICATE", "BULK_LOAD")}
RRDB_READS = {f"{RRDB}{n}" for n in ("GET", "MULTI_GET", "BATCH_GET", "SORTKEY_COUNT", "TTL", "GET_SCANNER",
                                     "SCAN", "CLEAR_SCANNER")}
META_CODES = {f"RPC_CM_{n}" for n in (
    "QUERY_PARTITION_CONFIG_BY_INDEX", "CREATE_APP", "DROP_APP", "RECALL_APP", "LIST_APPS", "LIST_NODES",
    "CLUSTER_INFO", "CONTROL_META", "PROPOSE_BALANCER", "UPDATE_APP_ENV", "QUERY_NODE_PARTITIONS",
    "CONFIG_SYNC", "UPDATE_PARTITION_CONFIGURATION", "START_BACKUP_APP", "START_RESTORE", "QUERY_DUPLICATION")}
KNOWN_CODES = RRDB_WRITES | RRDB_READS | META_CODES | {"RPC_CLI_CLI_CALL", "RPC_FD_FAILURE_DETECTOR_PING"}
ALLOWED_REPLICA_COUNT = (1, 5)  # [meta_server] min_allowed_replica_count, max_allowed_replica_count

REQUESTS: collections.Counter = collections.Counter()
_hooks: list[Callable[[str, str, str], None]] = []


def add_request_hook(hook: Callable[[str, str, str], None]) -> None:
    _hooks.append(hook)


# fn(app_id, partition_index, rpc_name, error, latency_ns) per request served, for the
# per-replica metrics (standin_metrics.py).
_served_hooks: list[Callable[[int, int, str, str, int], None]] = []


def add_served_hook(hook: Callable[[int, int, str, str, int], None]) -> None:
    _served_hooks.append(hook)


def _count(table: str, name: str, error: str) -> None:
    REQUESTS[(table, name)] += 1
    for hook in _hooks:
        try:
            hook(table, name, error)
        except Exception:  # noqa: BLE001 - a metrics hook never breaks serving
            log.exception("request hook failed")


def terminate(why: str) -> None:
    """What an uncaught exception or a failed CHECK does to the real server."""
    log.error("terminate called: %s", why)
    for handler in log.handlers:
        handler.flush()
    os._exit(134)


class RpcPort(ThreadingHTTPServer):
    """A role's TCP port: HTTP to `handler`, thrift RPC to `service.serve_session`."""

    daemon_threads = True

    def __init__(self, port: int, handler, service) -> None:
        self.service = service
        super().__init__(("0.0.0.0", port), handler)  # asio binds address_v4::any()

    def finish_request(self, request, client_address) -> None:
        try:
            request.settimeout(60)
            head = request.recv(4, socket.MSG_PEEK | socket.MSG_WAITALL)
            request.settimeout(None)
        except OSError:
            return
        if head == rt.THFT and self.service is not None:
            self.service.serve_session(request, client_address)
        elif head in rt.HTTP_SIGNATURES:
            super().finish_request(request, client_address)
        elif head:
            log.error("invalid header type, remote_client = %s:%d, header_type = '%s'", *client_address,
                      head.decode("latin-1"))


class RpcService:
    """Sessions: read requests, run each on its partition's worker, send the replies."""

    def __init__(self) -> None:
        self.workers: dict[int, queue.Queue] = {}
        self.workers_lock = threading.Lock()

    def serve_session(self, sock: socket.socket, peer) -> None:
        read_exact = rt.socket_reader(sock)
        send_lock = threading.Lock()

        def send(data: bytes) -> None:
            with send_lock:
                try:
                    sock.sendall(data)
                except OSError:
                    pass
        while True:
            try:
                request = rt.read_request(read_exact)
            except rt.Malformed as e:
                log.error("asio read from %s:%d failed: %s", *peer, e)
                return
            except rt.Fatal as e:
                terminate(f"{e} (from {peer[0]}:{peer[1]})")
                return
            except OSError:
                return
            if request is None:
                return
            self._worker(request.thread_hash).put((request, send))

    def _worker(self, thread_hash: int) -> queue.Queue:
        with self.workers_lock:
            work = self.workers.get(thread_hash)
            if work is None:
                work = self.workers[thread_hash] = queue.Queue()
                threading.Thread(target=self._run, args=(work,), daemon=True, name=f"rpc-{thread_hash}").start()
            return work

    def _run(self, work: queue.Queue) -> None:
        while True:
            request, send = work.get()
            started = time.monotonic_ns()
            try:
                table, error, result = self.handle(request)
            except rt.Fatal as e:
                terminate(str(e))
                return
            except Exception:  # noqa: BLE001 - log and keep serving, as a stand-in must
                log.exception("%s failed", request.name)
                continue
            _count(table, request.name, error)
            for hook in _served_hooks:
                try:
                    hook(request.app_id, request.partition_index, request.name, error, time.monotonic_ns() - started)
                except Exception:  # noqa: BLE001 - a metrics hook never breaks serving
                    log.exception("served hook failed")
            if error and not request.oneway:
                send(rt.encode_reply(error, f"{request.name}_ACK", request.seqid,
                                     result if error == "ERR_OK" else None))

    def handle(self, request: rt.Request) -> tuple[str, str, rt.Struct | None]:
        """(table, error name, response); error "" sends nothing."""
        raise NotImplementedError


# ------------------------------------------------------------------ MetaServer

class MetaRpc(RpcService):
    def __init__(self, meta) -> None:
        super().__init__()
        self.meta = meta

    def handle(self, request: rt.Request):
        if request.app_id > 0 and request.name in KNOWN_CODES:
            raise rt.Fatal(f"{request.name} for app {request.app_id}: service_app::on_intercepted_request: "
                           "not supported")
        if request.name == "RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX":
            query = rt.read_args(request, rt.read_struct(rt.QueryCfgRequest))
            return query.app_name, "ERR_OK", self.query_config(query)
        if request.name == "RPC_CM_CREATE_APP":
            create = rt.read_args(request, rt.read_struct(rt.CreateAppRequest))
            return create.app_name, "ERR_OK", self.create_app(create)
        log.warning("recv message with %s rpc name %s from a client", "unhandled" if request.name in KNOWN_CODES
                    else "unknown", request.name)
        return "", "ERR_HANDLER_NOT_FOUND", None

    def _address(self, node: str) -> rt.RpcAddress:
        ip, port = self.meta.node_address(node)
        return rt.RpcAddress(ip, port) if ip else rt.RpcAddress()

    def _host_port(self, node: str) -> rt.HostPort:
        host, _, port = node.rpartition(":")
        return rt.HostPort(host, int(port)) if host else rt.HostPort()

    def _partition(self, app: dict, part: dict) -> rt.PartitionConfiguration:
        secondaries = list(part["secondaries"])
        drops = list(part["dropped"])
        config = rt.PartitionConfiguration(
            pid=rt.Gpid(app["app_id"], part["pidx"]), ballot=part["ballot"],
            max_replica_count=part["max_replica_count"],
            primary=self._address(part["primary"]) if part["primary"] else rt.RpcAddress(),
            secondaries=[self._address(n) for n in secondaries], last_drops=[self._address(n) for n in drops],
            last_committed_decree=0, partition_flags=0)
        if self.meta.release() >= (2, 6):  # master: host_port beside each address
            config.hp_primary = self._host_port(part["primary"]) if part["primary"] else rt.HostPort()
            config.hp_secondaries = [self._host_port(n) for n in secondaries]
            config.hp_last_drops = [self._host_port(n) for n in drops]
        return config

    def query_config(self, query: rt.QueryCfgRequest) -> rt.QueryCfgResponse:
        meta = self.meta
        response = rt.QueryCfgResponse()
        if not meta.is_leader:
            response.err = rt.ErrorCode("ERR_FORWARD_TO_OTHERS")
            leader = meta.leader_address()
            if leader:
                ip, port = leader.rsplit(":", 1)
                response.partitions = [rt.PartitionConfiguration(primary=rt.RpcAddress(ip, int(port)))]
            return response
        with meta.lock:
            app = meta.apps.get(query.app_name)
            if app is None:
                response.err = rt.ErrorCode("ERR_OBJECT_NOT_FOUND")
                return response
            response.app_id, response.partition_count = app["app_id"], app["partition_count"]
            response.is_stateful = app["is_stateful"]
            parts = [app["partitions"][i] for i in query.partition_indices if 0 <= i < app["partition_count"]]
            response.partitions = [self._partition(app, p) for p in (parts or app["partitions"])]
        return response

    def create_app(self, create: rt.CreateAppRequest) -> rt.CreateAppResponse:
        meta, options = self.meta, create.options
        response = rt.CreateAppResponse()
        if not meta.is_leader:
            response.err = rt.ErrorCode("ERR_FORWARD_TO_OTHERS")
            return response
        with meta.lock:
            alive = sum(1 for w in meta.workers.values() if w["alive"])
            if meta.level in ("stopped", "blind", "freezed"):
                response.err = rt.ErrorCode("ERR_STATE_FREEZED")
            elif options.partition_count <= 0 or not ALLOWED_REPLICA_COUNT[0] <= options.replica_count <= min(
                    ALLOWED_REPLICA_COUNT[1], alive):
                response.err = rt.ErrorCode("ERR_INVALID_PARAMETERS")
            elif create.app_name in meta.apps:
                app = meta.apps[create.app_name]
                same = (options.partition_count == app["partition_count"] and options.app_type == app["app_type"]
                        and options.envs == app["envs"] and options.is_stateful == app["is_stateful"]
                        and options.replica_count == app["max_replica_count"])
                if not options.success_if_exist:
                    response.err = rt.ErrorCode("ERR_APP_EXIST")
                elif not same:
                    response.err = rt.ErrorCode("ERR_INVALID_PARAMETERS")
                else:
                    response.appid = app["app_id"]
            else:
                app = meta.new_app({"app_name": create.app_name, "app_type": options.app_type,
                                    "partition_count": options.partition_count,
                                    "max_replica_count": options.replica_count,
                                    "is_stateful": options.is_stateful}, envs=dict(options.envs))
                response.appid = app["app_id"]
                log.info("create app request, name(%s), type(%s), partition_count(%d), replica_count(%d): app_id %d",
                         create.app_name, options.app_type, options.partition_count, options.replica_count,
                         app["app_id"])
        return response


# ------------------------------------------------------------------ ReplicaServer

class ReplicaRpc(RpcService):
    """`replica` is the ReplicaServer (pegasus_server.Replica): its `data` (ReplicaData),
    `me` (node name), `status(gpid)` ("primary" | "secondary" | "learner" | "inactive" |
    None when no replica is open) and `table_name(app_id)`."""

    def __init__(self, replica) -> None:
        super().__init__()
        self.replica = replica

    def handle(self, request: rt.Request):
        replica = self.replica
        table = replica.table_name(request.app_id)
        if request.app_id == 0 or request.name not in KNOWN_CODES:
            log.warning("recv message with %s rpc name %s", "unknown" if request.name not in KNOWN_CODES
                        else "unhandled", request.name)
            return table, "ERR_HANDLER_NOT_FOUND", None
        gpid = (request.app_id, request.partition_index)
        status = replica.status(gpid)
        store = replica.data.store(gpid)
        is_write = request.name in RRDB_WRITES
        if status is None or store is None:
            log.error("%d.%d@%s: %s fail: code = %s, error = ERR_OBJECT_NOT_FOUND", *gpid, replica.me,
                      "write" if is_write else "read", request.name)
            return table, "ERR_OBJECT_NOT_FOUND", None
        if status != "primary" and not (request.backup and status == "secondary" and not is_write):
            return table, "ERR_INVALID_STATE", None
        if request.name not in (f"{RRDB}{n}" for n in ("PUT", "MULTI_PUT", "REMOVE", "MULTI_REMOVE", "GET",
                                                       "MULTI_GET", "TTL", "SORTKEY_COUNT", "GET_SCANNER", "SCAN",
                                                       "CLEAR_SCANNER")):
            return table, "ERR_HANDLER_NOT_FOUND", None
        if is_write:
            return (table, *self.write(request, gpid))
        return table, *self.read(request, gpid, store)

    def _fill(self, response, gpid):
        response.app_id, response.partition_index, response.server = gpid[0], gpid[1], self.replica.me
        return response

    def write(self, request: rt.Request, gpid: tuple[int, int]):
        name = request.name.removeprefix(RRDB)
        count, error = 0, rs.K_OK
        if name == "PUT":
            update = rt.read_args(request, rt.read_struct(rt.UpdateRequest))
            ops = rs.put_ops(update.key.data, update.value.data, update.expire_ts_seconds)
        elif name == "MULTI_PUT":
            multi = rt.read_args(request, rt.read_struct(rt.MultiPutRequest))
            ops, error = rs.multi_put_ops(multi.hash_key.data, [(kv.key.data, kv.value.data) for kv in multi.kvs],
                                          multi.expire_ts_seconds)
        elif name == "REMOVE":
            ops = rs.remove_ops(rt.read_args(request, rt.read_blob))
        else:
            remove = rt.read_args(request, rt.read_struct(rt.MultiRemoveRequest))
            ops, error, count = rs.multi_remove_ops(remove.hash_key.data, [k.data for k in remove.sort_keys])
        err, decree = self.replica.data.write(gpid, ops)
        if err != "ERR_OK":
            return err, None
        if name == "MULTI_REMOVE":
            return err, self._fill(rt.MultiRemoveResponse(error=error, count=count, decree=decree), gpid)
        return err, self._fill(rt.UpdateResponse(error=error, decree=decree), gpid)

    def read(self, request: rt.Request, gpid: tuple[int, int], store: rs.PartitionStore):
        name = request.name.removeprefix(RRDB)
        if name == "GET":
            error, value = rs.get(store, rt.read_args(request, rt.read_blob))
            return "ERR_OK", self._fill(rt.ReadResponse(error=error, value=rt.Blob(value)), gpid)
        if name == "TTL":
            error, seconds = rs.ttl(store, rt.read_args(request, rt.read_blob))
            return "ERR_OK", self._fill(rt.TtlResponse(error=error, ttl_seconds=seconds), gpid)
        if name == "SORTKEY_COUNT":
            error, count = rs.sortkey_count(store, rt.read_args(request, rt.read_blob))
            return "ERR_OK", self._fill(rt.CountResponse(error=error, count=count), gpid)
        if name == "MULTI_GET":
            q = rt.read_args(request, rt.read_struct(rt.MultiGetRequest))
            error, kvs = rs.multi_get(store, q.hash_key.data, [k.data for k in q.sort_keys], q.max_kv_count,
                                      q.max_kv_size, q.no_value, q.start_sortkey.data, q.stop_sortkey.data,
                                      q.start_inclusive, q.stop_inclusive, q.sort_key_filter_type,
                                      q.sort_key_filter_pattern.data, q.reverse)
            return "ERR_OK", self._fill(rt.MultiGetResponse(
                error=error, kvs=[rt.KeyValue(key=rt.Blob(k), value=rt.Blob(v)) for k, v in kvs]), gpid)
        if name == "CLEAR_SCANNER":
            rs.clear_scanner(store, rt.read_args(request, rt.read_i64))
            return "", None
        if name == "GET_SCANNER":
            q = rt.read_args(request, rt.read_struct(rt.GetScannerRequest))
            answer = rs.get_scanner(store, q.start_key.data, q.stop_key.data, q.start_inclusive, q.stop_inclusive,
                                    q.batch_size, q.no_value, (q.hash_key_filter_type, q.hash_key_filter_pattern.data),
                                    (q.sort_key_filter_type, q.sort_key_filter_pattern.data),
                                    bool(q.return_expire_ts), bool(q.only_return_count))
        else:  # SCAN
            answer = rs.scan(store, rt.read_args(request, rt.read_struct(rt.ScanRequest)).context_id)
        error, kvs, context_id, kv_count = answer
        return "ERR_OK", self._fill(rt.ScanResponse(
            error=error, context_id=context_id, kv_count=kv_count,
            kvs=[rt.KeyValue(key=rt.Blob(k), value=rt.Blob(v), expire_ts_seconds=e) for k, v, e in kvs]), gpid)



class NoRpc(RpcService):
    """A role that registers no client RPC (the Collector)."""

    def handle(self, request: rt.Request):
        return "", "ERR_HANDLER_NOT_FOUND", None
