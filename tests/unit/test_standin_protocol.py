"""The stand-in's client protocol: rDSN's thrift RPC as Apache's clients speak it.

Three levels: a replica's data and the rrdb semantics (rrdb_store.py, in process);
the wire, byte by byte (rdsn_thrift.py); and running stand-ins on loopback driven by
Apache's Python client from PyPI (pypegasus3, tests/support/pypegasus_env.py) and by
raw requests for what that client never sends (a follower, an unknown rpc, garbage).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid

import pytest
from thrift.protocol.TBinaryProtocol import TBinaryProtocol
from thrift.transport.TTransport import TMemoryBuffer

from tests.support.pypegasus_env import client_env
from tests.support.zookeeper_server import free_port
from tests.unit.test_standin import Node, alive, call, get, partitions, rt, rs, values, wait_for



# ------------------------------------------------------------------ a replica's data

@pytest.fixture
def store(tmp_path):
    s = rs.PartitionStore(str(tmp_path / "1.0.pegasus"))
    yield s
    s.close()


def put(store, hash_key: bytes, sort_key: bytes, value: bytes, expire: int = 0) -> None:
    store.apply(store.decree + 1, rs.put_ops(rs.generate_key(hash_key, sort_key), value, expire))


def multi_get(store, hash_key, **options):
    args = dict(sort_keys=[], max_kv_count=0, max_kv_size=0, no_value=False, start_sortkey=b"", stop_sortkey=b"",
                start_inclusive=True, stop_inclusive=False, filter_type=rs.FT_NO_FILTER, filter_pattern=b"",
                reverse=False)
    args.update(options)
    return rs.multi_get(store, hash_key, **args)


def test_keys_sort_as_rocksdb_orders_pegasus_keys():
    # big-endian hash key length first: a longer hash key sorts after a shorter one
    assert rs.generate_key(b"b", b"z") < rs.generate_key(b"aa", b"")
    assert rs.next_blob(rs.generate_key(b"h")) == b"\x00\x01i"
    assert rs.next_blob(rs.generate_key(b"")) == b"\x00\x01"
    assert rs.restore_key(rs.generate_key(b"hk", b"sk")) == (b"hk", b"sk")


def test_multi_get_ranges_filters_limits_and_order(store):
    for sort_key in (b"a", b"b", b"c", b"d", b"pre1", b"pre2"):
        put(store, b"h", sort_key, b"v-" + sort_key)
    put(store, b"other", b"a", b"x")
    assert multi_get(store, b"h", start_sortkey=b"b", stop_sortkey=b"d") == (rs.K_OK, [(b"b", b"v-b"), (b"c", b"v-c")])
    assert [k for k, _ in multi_get(store, b"h", start_sortkey=b"b", stop_sortkey=b"d", start_inclusive=False,
                                    stop_inclusive=True)[1]] == [b"c", b"d"]
    assert [k for k, _ in multi_get(store, b"h", filter_type=rs.FT_MATCH_PREFIX, filter_pattern=b"pre")[1]] == [
        b"pre1", b"pre2"]
    assert [k for k, _ in multi_get(store, b"h", filter_type=rs.FT_MATCH_POSTFIX, filter_pattern=b"2")[1]] == [
        b"pre2"]
    # reverse reads from the end, the answer is still in sort key order
    assert multi_get(store, b"h", max_kv_count=2, reverse=True) == (rs.K_INCOMPLETE, [(b"pre1", b"v-pre1"),
                                                                                    (b"pre2", b"v-pre2")])
    assert multi_get(store, b"h", max_kv_count=2) == (rs.K_INCOMPLETE, [(b"a", b"v-a"), (b"b", b"v-b")])
    assert multi_get(store, b"h", no_value=True, sort_keys=[b"a", b"zz"]) == (rs.K_OK, [(b"a", b"")])
    assert multi_get(store, b"h", start_sortkey=b"c", stop_sortkey=b"b") == (rs.K_OK, [])  # empty range
    assert multi_get(store, b"h", filter_type=9)[0] == rs.K_INVALID_ARGUMENT


def test_expired_records_read_as_not_found_and_ttl_counts_down(store):
    now = rs.epoch_now()
    put(store, b"h", b"old", b"x", expire=now - 1)
    put(store, b"h", b"new", b"y", expire=now + 100)
    put(store, b"h", b"forever", b"z")
    assert rs.get(store, rs.generate_key(b"h", b"old")) == (rs.K_NOT_FOUND, b"")
    assert rs.ttl(store, rs.generate_key(b"h", b"new"))[1] in (99, 100)
    assert rs.ttl(store, rs.generate_key(b"h", b"forever")) == (rs.K_OK, -1)
    assert rs.sortkey_count(store, b"h") == (rs.K_OK, 2)
    assert [k for k, _ in multi_get(store, b"h")[1]] == [b"forever", b"new"]


def test_writes_with_empty_lists_are_invalid_yet_take_a_decree():
    assert rs.multi_put_ops(b"h", [], 0) == ([], rs.K_INVALID_ARGUMENT)
    assert rs.multi_remove_ops(b"h", []) == ([], rs.K_INVALID_ARGUMENT, 0)
    ops, error, count = rs.multi_remove_ops(b"h", [b"a", b"b"])
    assert error == rs.K_OK and count == 2 and [o[0] for o in ops] == ["del", "del"]


def test_scanners_batch_over_a_snapshot_and_contexts_answer_once(store):
    for i in range(5):
        put(store, b"h", b"%d" % i, b"v%d" % i)
    error, kvs, context, _ = rs.get_scanner(store, rs.generate_key(b"h"), rs.next_blob(rs.generate_key(b"h")), True,
                                            False, 2, False, (0, b""), (0, b""))
    assert error == rs.K_OK and [k for k, _, _ in kvs] == [rs.generate_key(b"h", b"0"), rs.generate_key(b"h", b"1")]
    put(store, b"h", b"9", b"later")  # not in the scanner's snapshot
    rest = []
    while context != rs.SCAN_CONTEXT_ID_COMPLETED:
        error, kvs, next_context, _ = rs.scan(store, context)
        assert error == rs.K_OK
        assert rs.scan(store, context)[0] == rs.K_NOT_FOUND  # a context answers once (fetched from the cache)
        rest += [rs.restore_key(k)[1] for k, _, _ in kvs]
        context = next_context
    assert rest == [b"2", b"3", b"4"]
    # a full scan of the partition, with a hash key prefix filter and a count only
    put(store, b"hz", b"a", b"1")
    error, kvs, context, count = rs.get_scanner(store, b"", b"\xff\xff", True, True, 100, False, (rs.FT_MATCH_PREFIX,
                                                b"hz"), (0, b""), only_return_count=True)
    assert (error, kvs, context, count) == (rs.K_OK, [], rs.SCAN_CONTEXT_ID_COMPLETED, 1)


def test_a_replica_reopens_with_every_mutation_and_takes_a_learned_snapshot(tmp_path):
    directory = str(tmp_path / "2.3.pegasus")
    store = rs.PartitionStore(directory)
    for i in range(rs.COMPACT_EVERY + 3):  # across a checkpoint
        put(store, b"h", b"%05d" % i, b"v")
    store.apply(store.decree + 1, rs.remove_ops(rs.generate_key(b"h", b"00000")))
    decree = store.decree
    store.close()
    with open(os.path.join(directory, "standin.log"), "a") as log:
        log.write('{"d": 99999, "ops": [["put", "00')  # a torn last line: never acknowledged
    reopened = rs.PartitionStore(directory)
    assert reopened.decree == decree and rs.sortkey_count(reopened, b"h") == (rs.K_OK, rs.COMPACT_EVERY + 2)
    with pytest.raises(ValueError):
        reopened.apply(decree + 2, [])  # a gap: the primary must teach this replica again
    snapshot = reopened.snapshot()
    learner = rs.PartitionStore(str(tmp_path / "learner"))
    learner.replace(snapshot)
    assert learner.decree == decree and rs.sortkey_count(learner, b"h") == (rs.K_OK, rs.COMPACT_EVERY + 2)
    reopened.close()
    learner.close()


# ------------------------------------------------------------------ the wire

def test_v0_and_v1_requests_parse_and_replies_frame_as_thrift_message_parser_writes_them():
    for version in (0, 1):
        data = rt.encode_request("RPC_RRDB_RRDB_GET", 7, b"\x00\x01hk", app_id=3, pidx=2, header_version=version,
                                 timeout_ms=500, backup=version == 1)
        chunks = [data]
        request = rt.read_request(lambda n: _take(chunks, n))
        assert (request.name, request.seqid, request.app_id, request.partition_index, request.timeout_ms,
                request.header_version, request.backup) == ("RPC_RRDB_RRDB_GET", 7, 3, 2, 500, version, version == 1)
        assert rt.read_args(request, rt.read_blob) == b"\x00\x01hk"
        assert request.thread_hash == 3 * 7919 + 2
    reply = rt.encode_reply("ERR_OK", "RPC_RRDB_RRDB_GET_ACK", 7, rt.ReadResponse(error=0, value=rt.Blob(b"v")))
    assert int.from_bytes(reply[:4], "big") == len(reply)  # the length counts itself
    proto = TBinaryProtocol(TMemoryBuffer(reply[4:]))
    assert proto.readBinary() == b"ERR_OK" and proto.readMessageBegin() == ("RPC_RRDB_RRDB_GET_ACK", 2, 7)
    error = rt.encode_reply("ERR_INVALID_STATE", "RPC_RRDB_RRDB_PUT_ACK", 8)
    chunks = [error]
    parsed = rt.read_reply(lambda n: _take(chunks, n))
    assert (parsed.error, parsed.name, parsed.seqid, chunks) == ("ERR_INVALID_STATE", "RPC_RRDB_RRDB_PUT_ACK", 8, [b""])


def _take(chunks: list[bytes], n: int) -> bytes:
    data = chunks[0][:n]
    chunks[0] = chunks[0][n:]
    return data


@pytest.mark.parametrize("data,why", [
    (b"GARBAGE!", "hdr_type mismatch"),
    (b"THFT" + (7).to_bytes(4, "big"), "invalid hdr_version 7"),
    (b"THFT" + (0).to_bytes(4, "big") + (40).to_bytes(4, "big") + bytes(36), "hdr_length should be 48, but 40"),
])
def test_a_header_the_parser_refuses_closes_the_connection(data, why):
    chunks = [data]
    with pytest.raises(rt.Malformed, match=why):
        rt.read_request(lambda n: _take(chunks, n))


def unreadable_body(app_id: int = 1) -> bytes:
    """A v0 request whose message begin names a 64-byte rpc name the body does not hold."""
    body = b"\x80\x01\x00\x01\x00\x00\x00\x40short"
    return (b"THFT" + (0).to_bytes(4, "big") + (48).to_bytes(4, "big")
            + rt.V0_META.pack(0, len(body), 0, app_id, 0, 0, 0, 0) + body)


def test_a_body_thrift_cannot_read_terminates_the_server():
    chunks = [unreadable_body()]
    with pytest.raises(rt.Fatal):
        rt.read_request(lambda n: _take(chunks, n))


# ------------------------------------------------------------------ running stand-ins

@pytest.fixture
def cluster(tmp_path, zookeeper_server, zookeeper_client):
    name = f"proto-{uuid.uuid4().hex[:8]}"
    metas, reps = [free_port(), free_port()], [free_port() for _ in range(3)]
    vals = values(name, zookeeper_server.hosts, metas)
    overrides = {"meta_server/min_live_node_count_for_unfreeze": "2",
                 "meta_server/replica_assign_delay_ms_for_dropouts": "0"}
    nodes = [Node(tmp_path, "2.5.0", "meta", f"m{i}", vals, {"meta": p}, **overrides) for i, p in enumerate(metas)]
    nodes += [Node(tmp_path, "2.5.0", "replica", f"r{i}", vals, {"replica": p}, **overrides)
              for i, p in enumerate(reps)]
    nodes[0].start()
    wait_for("meta 0 to lead", lambda: get(metas[0], "/meta/cluster")[0] == 200)
    for n in nodes[1:]:
        n.start()
    wait_for("3 ALIVE replicas", lambda: alive(metas[0], 3))
    wait_for("stat healthy", lambda: get(metas[0], "/meta/apps?detail")[1]["summary"].get(
        "fully_healthy_app_count") == "1")
    yield {"nodes": nodes, "metas": metas, "reps": reps, "meta_list": [f"127.0.0.1:{p}" for p in metas]}
    for n in nodes:
        n.stop()
    zookeeper_client.delete(f"/pegasus/{name}", recursive=True)


def python_client(script: str, meta_list: list[str], timeout: float = 120) -> dict:
    """Runs `script` (the body of an inlineCallbacks function `go(c)` given a pypegasus3
    client of table `stat`) with Apache's Python client; returns what it `record`s."""
    program = textwrap.dedent('''
        import json, sys
        from twisted.internet import reactor, defer
        from twisted.internet.defer import inlineCallbacks
        from pypegasus.pgclient import Pegasus
        from pypegasus.base.ttypes import error_types
        from pypegasus.utils.tools import ScanOptions, MultiGetOptions
        out = {}
        def plain(value):
            if isinstance(value, bytes):
                return value.decode()
            if isinstance(value, (tuple, list)):
                return [plain(v) for v in value]
            return value
        def record(key, value):
            out[key] = plain(value)
        @inlineCallbacks
        def main():
            try:
                c = Pegasus(%r, 'stat', 3000)
                out['init'] = bool((yield c.init()))
                yield go(c)
                c.close()
            except Exception as e:
                out['exception'] = repr(e)
            reactor.stop()
        @inlineCallbacks
        def go(c):
        %s
        reactor.callWhenRunning(main)
        reactor.run()
        print(json.dumps(out, default=repr))
    ''') % (meta_list, textwrap.indent(textwrap.dedent(script), "    "))
    env = {**os.environ, "PYTHONPATH": str(client_env())}
    with tempfile.TemporaryDirectory() as work:  # the client writes pegasus.log where it runs
        result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=timeout,
                                env=env, cwd=work)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_apache_python_client_sends_every_rpc_and_gets_the_real_semantics(cluster):
    out = python_client('''
        record('set', (yield c.set('h1', 's1', 'v1')))
        record('get', (yield c.get('h1', 's1')))
        record('ttl', (yield c.ttl('h1', 's1')))
        record('set_ttl', (yield c.set('h1', 's2', 'v2', ttl=100)))
        record('ttl2', (yield c.ttl('h1', 's2'))[0])
        record('ttl2_left', (yield c.ttl('h1', 's2'))[1] in (99, 100))
        record('multi_set', (yield c.multi_set('h2', {'a': '1', 'b': '2', 'c': '3'})))
        code, kvs = yield c.multi_get('h2', {'a', 'c', 'z'})
        record('multi_get', [code, sorted((k.decode(), v.decode()) for k, v in kvs.items())])
        code, kvs = yield c.get_sort_keys('h2')
        record('sort_keys', [code, sorted(k.decode() for k in kvs)])
        record('count', (yield c.sort_key_count('h2')))
        code, kvs = yield c.multi_get_opt('h2', 'a', 'c', MultiGetOptions())
        record('multi_get_opt', [code, sorted(k.decode() for k in kvs)])
        record('multi_del', (yield c.multi_del('h2', {'a'})))
        record('remove', (yield c.remove('h1', 's1')))
        record('get_removed', (yield c.get('h1', 's1'))[0])
        scanner = c.get_scanner('h2', 'a', 'z', ScanOptions())
        seen = []
        while True:
            kv = yield scanner.get_next()
            if kv is None:
                break
            seen.append([kv[0][1], kv[1].decode()])
        scanner.close()
        record('scan', seen)
        full = []
        for s in c.get_unordered_scanners(3, ScanOptions()):
            while True:
                kv = yield s.get_next()
                if kv is None:
                    break
                full.append(list(kv[0]))
            s.close()
        record('full_scan', sorted(full))
    ''', cluster["meta_list"])
    assert out.get("init") is True and "exception" not in out, out
    assert out["set"] == [0, None] and out["get"] == [0, "v1"] and out["ttl"] == [0, -1]
    assert out["set_ttl"] == [0, None] and out["ttl2"] == 0 and out["ttl2_left"] is True
    assert out["multi_set"] == [0, None] and out["multi_get"] == [0, [["a", "1"], ["c", "3"]]]
    assert out["sort_keys"] == [0, ["a", "b", "c"]] and out["count"] == [0, 3]
    assert out["multi_get_opt"] == [0, ["a", "b"]]  # [start, stop): the stop sort key excluded
    assert out["multi_del"] == [0, 1] and out["remove"] == [0, None]
    assert out["get_removed"] == 23  # kNotFound, as the client turns it into ERR_OBJECT_NOT_FOUND
    assert out["scan"] == [["b", "2"], ["c", "3"]]
    assert out["full_scan"] == [["h1", "s2"], ["h2", "b"], ["h2", "c"]]


def test_the_metaserver_answers_queries_as_the_real_one_does(cluster):
    leader, follower = cluster["metas"]
    config = partitions(leader)
    assert (config.err.name, config.partition_count, config.is_stateful) == ("ERR_OK", 4, True)
    assert len(config.partitions) == 4 and all(p.primary.ip == "127.0.0.1" and len(p.secondaries) == 2
                                              for p in config.partitions)
    assert partitions(leader, "nope").err.name == "ERR_OBJECT_NOT_FOUND"
    # A follower cannot forward a thrift request: it names the leader (meta_service.cpp check_leader).
    forwarded = partitions(follower)
    assert forwarded.err.name == "ERR_FORWARD_TO_OTHERS" and forwarded.app_id == 0
    assert [(p.primary.ip, p.primary.port) for p in forwarded.partitions] == [("127.0.0.1", leader)]
    # Only asked partitions; none of them existing: all of them (server_state.cpp).
    reply = call(leader, "RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX", rt.QueryCfgRequest(app_name="stat",
                                                                                      partition_indices=[2]))
    assert [p.pid.pidx for p in reply.result(rt.QueryCfgResponse).partitions] == [2]
    # Creating a table: twice is ERR_APP_EXIST, unless success_if_exist with the same options.
    options = rt.CreateAppOptions(partition_count=2, replica_count=3, app_type="pegasus", is_stateful=True, envs={})
    created = call(leader, "RPC_CM_CREATE_APP", rt.CreateAppRequest(app_name="t2", options=options)).result(
        rt.CreateAppResponse)
    assert created.err.name == "ERR_OK" and created.appid == 2
    again = call(leader, "RPC_CM_CREATE_APP", rt.CreateAppRequest(app_name="t2", options=options))
    assert again.result(rt.CreateAppResponse).err.name == "ERR_APP_EXIST"
    options.replica_count = 4  # more than the ALIVE ReplicaServers
    assert call(leader, "RPC_CM_CREATE_APP", rt.CreateAppRequest(app_name="t3", options=options)).result(
        rt.CreateAppResponse).err.name == "ERR_INVALID_PARAMETERS"
    # An rpc name no task code has, and an rrdb request to a MetaServer without a table id.
    for name, argument in (("RPC_NO_SUCH_THING", b""), ("RPC_RRDB_RRDB_GET", b"\x00\x01h")):
        reply = call(leader, name, argument)
        assert (reply.error, reply.name) == ("ERR_HANDLER_NOT_FOUND", f"{name}_ACK")


def test_replicaservers_refuse_what_they_do_not_serve_with_the_real_error_codes(cluster):
    config = partitions(cluster["metas"][0])
    part = config.partitions[0]
    secondary = part.secondaries[0]
    key = rs.generate_key(b"h", b"s")
    update = rt.UpdateRequest(key=rt.Blob(key), value=rt.Blob(b"v"), expire_ts_seconds=0)
    put = call(part.primary.port, "RPC_RRDB_RRDB_PUT", update, app_id=config.app_id, pidx=0)
    assert put.error == "ERR_OK" and put.result(rt.UpdateResponse).decree >= 1
    # a secondary: not the primary (a backup request may read there)
    assert call(secondary.port, "RPC_RRDB_RRDB_PUT", update, app_id=config.app_id, pidx=0).error == \
        "ERR_INVALID_STATE"
    assert call(secondary.port, "RPC_RRDB_RRDB_GET", key, app_id=config.app_id, pidx=0).error == "ERR_INVALID_STATE"
    backup = call(secondary.port, "RPC_RRDB_RRDB_GET", key, app_id=config.app_id, pidx=0, header_version=1,
                  backup=True)
    assert backup.error == "ERR_OK" and backup.result(rt.ReadResponse).value.data == b"v"  # replicated
    # no such partition, no such table
    assert call(part.primary.port, "RPC_RRDB_RRDB_GET", key, app_id=config.app_id, pidx=99).error == \
        "ERR_OBJECT_NOT_FOUND"
    assert call(part.primary.port, "RPC_RRDB_RRDB_GET", key, app_id=77, pidx=0).error == "ERR_OBJECT_NOT_FOUND"
    # a one-way clear_scanner gets no answer; the next request on the session does
    with socket.create_connection(("127.0.0.1", part.primary.port), timeout=10) as sock:
        sock.sendall(rt.encode_request("RPC_RRDB_RRDB_CLEAR_SCANNER", 1, 12345, app_id=config.app_id, pidx=0,
                                       oneway=True))
        sock.sendall(rt.encode_request("RPC_RRDB_RRDB_TTL", 2, key, app_id=config.app_id, pidx=0))
        reply = rt.read_reply(rt.socket_reader(sock))
        assert (reply.seqid, reply.result(rt.TtlResponse).ttl_seconds) == (2, -1)
    # two of three replicas gone: too few to write (mutation_2pc_min_replica_count = 2)
    others = [cluster["nodes"][2 + i] for i, port in enumerate(cluster["reps"]) if port != part.primary.port]
    for node in others:
        node.stop(signal.SIGKILL)
    wait_for("a write refused for too few replicas", lambda: call(
        part.primary.port, "RPC_RRDB_RRDB_PUT", update, app_id=config.app_id, pidx=0).error == "ERR_NOT_ENOUGH_MEMBER",
        timeout=30)


def test_what_the_parser_cannot_read_closes_the_session_or_ends_the_server(cluster):
    replica = cluster["reps"][0]
    for garbage in (b"RDSN" + bytes(60), b"HELO there"):
        with socket.create_connection(("127.0.0.1", replica), timeout=10) as sock:
            sock.sendall(garbage)
            assert sock.recv(100) == b""  # closed, no answer
    # HTTP still answers on the same port
    assert get(replica, "/version")[0] == 200
    # A body thrift cannot read terminates the process (no one catches the exception).
    node = cluster["nodes"][2]
    with socket.create_connection(("127.0.0.1", replica), timeout=10) as sock:
        sock.sendall(unreadable_body())
        assert sock.recv(100) == b""
    assert node.process.wait(timeout=20) == 134
    assert "terminate called" in node.log_text()
    # A MetaServer given a request with a table id in its header aborts (on_intercepted_request).
    meta = cluster["nodes"][1]
    call(cluster["metas"][1], "RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX", rt.QueryCfgRequest(app_name="stat"),
         app_id=1, pidx=0)
    assert meta.process.wait(timeout=20) == 134 and "not supported" in meta.log_text()


def test_acknowledged_writes_survive_a_primary_moving_and_every_server_restarting(cluster):
    script = '''
        for i in range(40):
            code, _ = yield c.set('hk%d' % (i % 8), 's%d' % i, 'v%d' % i)
            record('set%d' % i, code)
    '''
    out = python_client(script, cluster["meta_list"])
    assert all(out[f"set{i}"] == 0 for i in range(40)), out
    # a ReplicaServer dies: its primaries move to secondaries that hold the data
    cluster["nodes"][2].stop(signal.SIGKILL)
    wait_for("the dead server UNALIVE", lambda: alive(cluster["metas"][0], 2), timeout=20)
    wait_for("primaries moved", lambda: get(cluster["metas"][0], "/meta/app?name=stat&detail")[1]["healthy"][
        "read_unhealthy_partition_count"] == "0", timeout=20)
    time.sleep(2)  # the new primaries learn their role from the next beacons
    read = '''
        for i in range(40):
            record('get%d' % i, (yield c.get('hk%d' % (i % 8), 's%d' % i)))
    '''
    out = python_client(read, cluster["meta_list"])
    assert all(out.get(f"get{i}") == [0, f"v{i}"] for i in range(40)), out
    # every ReplicaServer restarts: the replicas come back from the data dirs
    for node in cluster["nodes"][2:]:
        node.stop()
    for node in cluster["nodes"][2:]:
        node.start()
    wait_for("stat healthy again", lambda: get(cluster["metas"][0], "/meta/app?name=stat&detail")[1]["healthy"][
        "fully_healthy_partition_count"] == "4", timeout=60)
    time.sleep(2)  # the replicas learn their new roles from the next beacons
    out = python_client(read, cluster["meta_list"])
    assert all(out.get(f"get{i}") == [0, f"v{i}"] for i in range(40)), out
    data = [p for n in cluster["nodes"][2:] for p in (n.app_dir / "ssd1" / "reps").glob("*.pegasus")] + [
        p for n in cluster["nodes"][2:] for p in (n.app_dir / "ssd2" / "reps").glob("*.pegasus")]
    assert {p.name for p in data} == {f"1.{i}.pegasus" for i in range(4)}  # one directory per partition


def test_pypegasus3_reads_no_partition_configuration_of_a_2_6_metaserver(tmp_path, zookeeper_server,
                                                                        zookeeper_client):
    """Master's MetaServer gives each partition its host_port beside its address
    (hp_primary, hp_secondaries, hp_last_drops: optional fields 9-11 of
    partition_configuration, idl/dsn.layer2.thrift at master), written as rDSN writes a
    host_port: a string, an i16 and a byte under a T_STRUCT field header
    (serialization_helper/thrift_helper.h host_port::write). pypegasus3 0.0.1.1 (PyPI) does
    not know them and skips them as a thrift struct, which misreads them: the answer is
    lost and the client has no configuration. Apache's python-client learned host_port
    after 2.5 (commit 5cfba55, #2062, in no release)."""
    name = f"proto26-{uuid.uuid4().hex[:8]}"
    meta_port, reps = free_port(), [free_port() for _ in range(3)]
    vals = values(name, zookeeper_server.hosts, [meta_port])
    nodes = [Node(tmp_path, "2.6.0", "meta", "m", vals, {"meta": meta_port})]
    nodes += [Node(tmp_path, "2.6.0", "replica", f"r{i}", vals, {"replica": p}) for i, p in enumerate(reps)]
    try:
        nodes[0].start()
        wait_for("the MetaServer leads", lambda: get(meta_port, "/meta/cluster")[0] == 200)
        for node in nodes[1:]:
            node.start()
        wait_for("stat healthy", lambda: get(meta_port, "/meta/apps?detail")[1]["summary"].get(
            "fully_healthy_app_count") == "1")
        config = partitions(meta_port)  # this module's own reader knows host_port
        assert config.partitions[0].hp_primary.host == "localhost"
        out = python_client("record('partitions', len(c.table.partition_dict))\nyield defer.succeed(None)",
                            [f"127.0.0.1:{meta_port}"])
        assert out == {"init": False, "partitions": 0}, out
    finally:
        for node in nodes:
            node.stop()
        zookeeper_client.delete(f"/pegasus/{name}", recursive=True)
