"""Puts over Pegasus's client protocol with the wire module alone, for release 2.6.

pypegasus3 reads no partition configuration of a 2.6 MetaServer (test_standin_protocol.py
says why), so where the monitoring's dashboards need requests to show on 2.6, this sends
them: each partition's primary from the MetaServer's answer (its `primary` rpc_address,
which master still fills beside `hp_primary`), one RPC_RRDB_RRDB_PUT at a time, until
--seconds have passed. It measures nothing: availability figures come from
availability_load.py only.

    python3 raw_writes.py --metas 10.0.0.1:34601,10.0.0.2:34601 --table stat --seconds 20
"""

from __future__ import annotations

import argparse
import socket
import struct
import sys
import time

import rdsn_thrift as rt


def call(address: tuple[str, int], name: str, argument, response_cls, **header):
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(rt.encode_request(name, 1, argument, **header))
        reply = rt.read_reply(rt.socket_reader(sock))
    if reply is None or reply.error != "ERR_OK":
        raise OSError(f"{name} to {address}: {reply.error if reply else 'connection closed'}")
    return reply.result(response_cls)


def pegasus_key(hash_key: bytes, sort_key: bytes) -> bytes:
    """The stored key: the hash key's length (2 bytes, big endian), the hash key, the sort key."""
    return struct.pack(">H", len(hash_key)) + hash_key + sort_key


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--metas", required=True, help="the MetaServers, ip:port,...")
    parser.add_argument("--table", required=True)
    parser.add_argument("--seconds", type=float, required=True)
    args = parser.parse_args(argv)
    config = None
    for meta in args.metas.split(","):  # a MetaServer that does not lead answers ERR_FORWARD_TO_OTHERS
        host, port = meta.rsplit(":", 1)
        answer = call((host, int(port)), "RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX",
                      rt.QueryCfgRequest(app_name=args.table), rt.QueryCfgResponse)
        if answer.err.name == "ERR_OK":
            config = answer
            break
    if config is None:
        raise SystemExit(f"no MetaServer of {args.metas} gave table {args.table}'s partitions")
    sent, deadline = 0, time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        for part in config.partitions:
            request = rt.UpdateRequest(key=rt.Blob(pegasus_key(b"dashboards", b"%d" % sent)), value=rt.Blob(b"v"),
                                       expire_ts_seconds=0)
            call((part.primary.ip, part.primary.port), "RPC_RRDB_RRDB_PUT", request, rt.UpdateResponse,
                 app_id=config.app_id, pidx=part.pid.pidx)
            sent += 1
        time.sleep(0.05)
    print(f"{sent} puts")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
