"""rDSN's thrift RPC, as Pegasus's clients speak it on a role's TCP port.

Modelled on apache/incubator-pegasus; the wire is the same at v2.4.0, v2.5.0 and
master (src/runtime/rpc/thrift_message_parser.cpp at v2.5.0; src/rdsn/src/runtime/rpc/
at v2.4.0; src/rpc/ at master):

  request  "THFT" u32 hdr_version
           v0: u32 hdr_length (must be 48), request_meta_v0 (u32 hdr_crc32, body_length,
               body_crc32, app_id, partition_index, client_timeout, client_thread_hash,
               u64 client_partition_hash), then body_length bytes of body
           v1: u32 meta_length, u32 body_length, thrift_request_meta_v1 (a thrift struct:
               1 app_id, 2 partition_index, 3 client_timeout, 4 client_partition_hash,
               5 is_backup_request), then the body
           body: a thrift binary message begin (CALL or ONEWAY), then the arguments as
               a struct whose first field is read whatever its id
               (serialization_helper/thrift_helper.h unmarshall_thrift_internal)
  reply    i32 total length (these 4 bytes included), string error name, message
           begin (name, T_REPLY, the request's seqid), then the result as a struct
           whose field 0 holds the response (marshall_thrift_internal); an error
           reply (dsn_rpc_reply with an error) carries no result.

How the real server treats what it cannot parse (asio_rpc_session.cpp do_read,
rpc_session::prepare_parser, thrift_message_parser.cpp): a first 4 bytes that are no
known header ("THFT", or "GET "/"POST" for HTTP) close the connection; so does a
wrong "THFT", hdr_version or hdr_length, and a message that is neither CALL nor
ONEWAY. A body that thrift cannot read throws out of the parser (or the handler's
unmarshall) and nothing catches it: the process terminates (`Fatal`).

Types with rDSN's own binary form (thrift_helper.h): blob is a thrift binary,
error_code a string (its name), gpid and rpc_address an i64 each (rpc_address:
ip << 32 | port << 16 | 1), host_port (master) a string, an i16 port and a byte
type. Fields of these types travel under a T_STRUCT field header. Generated C++
writes every non-optional field, so a default value is on the wire too.

Structures are declared below from the IDL's field ids (idl/dsn.layer2.thrift,
idl/rrdb.thrift, idl/meta_admin.thrift at v2.5.0; src/rdsn/src/common/meta_admin.thrift
at v2.4.0) and read and written with the `thrift` library's generic readStruct and
writeStruct: nothing here is generated from those files.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import Any, Callable

from thrift.protocol.TBinaryProtocol import TBinaryProtocol
from thrift.protocol.TProtocol import TProtocolException
from thrift.Thrift import TMessageType, TType
from thrift.transport.TTransport import TMemoryBuffer, TTransportException

THFT = b"THFT"
HTTP_SIGNATURES = (b"GET ", b"POST")  # http_server.cpp: register_message_header_parser
HEADER_V0 = 48
HEADER_V1 = 16
V0_META = struct.Struct(">IIIIIIIQ")  # request_meta_v0 after "THFT", version and length
RPC_ADDRESS_IPV4 = 1


class Malformed(Exception):
    """The real server logs the reason and closes the connection."""


class Fatal(Exception):
    """The real server terminates: an exception nobody catches (std::terminate)."""


# ------------------------------------------------------------------ rDSN's own types

class Blob:
    def __init__(self, data: bytes = b"") -> None:
        self.data = bytes(data)

    def read(self, iprot) -> None:
        self.data = iprot.readBinary()

    def write(self, oprot) -> None:
        oprot.writeBinary(self.data)

    def __eq__(self, other) -> bool:
        return isinstance(other, Blob) and other.data == self.data

    def __repr__(self) -> str:
        return f"Blob({self.data!r})"


class ErrorCode:
    def __init__(self, name: str = "ERR_OK") -> None:
        self.name = name

    def read(self, iprot) -> None:
        self.name = iprot.readBinary().decode("utf-8", "replace")

    def write(self, oprot) -> None:
        oprot.writeBinary(self.name.encode())

    def __repr__(self) -> str:
        return self.name


class Gpid:
    def __init__(self, app_id: int = 0, pidx: int = 0) -> None:
        self.app_id, self.pidx = app_id, pidx

    def read(self, iprot) -> None:
        value = iprot.readI64() & 0xFFFFFFFFFFFFFFFF
        self.app_id, self.pidx = value & 0xFFFFFFFF, value >> 32

    def write(self, oprot) -> None:
        value = (self.pidx << 32) | (self.app_id & 0xFFFFFFFF)
        oprot.writeI64(value - (1 << 64) if value >= 1 << 63 else value)


class RpcAddress:
    """rpc_address: 0 is the invalid address."""

    def __init__(self, ip: str = "", port: int = 0) -> None:
        self.ip, self.port = ip, port

    @property
    def value(self) -> int:
        if not self.ip:
            return 0
        return (struct.unpack(">I", socket.inet_aton(self.ip))[0] << 32) | (self.port << 16) | RPC_ADDRESS_IPV4

    def read(self, iprot) -> None:
        value = iprot.readI64() & 0xFFFFFFFFFFFFFFFF
        if value & 0x3 == RPC_ADDRESS_IPV4:
            self.ip, self.port = socket.inet_ntoa(struct.pack(">I", value >> 32)), (value >> 16) & 0xFFFF
        else:
            self.ip, self.port = "", 0

    def write(self, oprot) -> None:
        value = self.value
        oprot.writeI64(value - (1 << 64) if value >= 1 << 63 else value)

    def __str__(self) -> str:
        return f"{self.ip}:{self.port}" if self.ip else "invalid address"


class HostPort:
    """host_port (master only): the name a node is known by."""

    def __init__(self, host: str = "", port: int = 0) -> None:
        self.host, self.port = host, port

    def read(self, iprot) -> None:
        self.host = iprot.readString()
        self.port = iprot.readI16() & 0xFFFF
        iprot.readByte()

    def write(self, oprot) -> None:
        oprot.writeString(self.host)
        oprot.writeI16(self.port - (1 << 16) if self.port >= 1 << 15 else self.port)
        oprot.writeByte(RPC_ADDRESS_IPV4 if self.host else 0)


# ------------------------------------------------------------------ IDL structures

def _struct(cls) -> tuple:
    return (TType.STRUCT, (cls, None))


def _list(elem_type: int, spec=None) -> tuple:
    return (TType.LIST, (elem_type, spec, False))


class Struct:
    """A thrift struct from a table of fields: {id: (name, type, spec, default, optional)}.
    Non-optional fields start at their default and are always written."""

    FIELDS: dict[int, tuple[str, int, Any, Any, bool]] = {}

    def __init_subclass__(cls) -> None:
        size = max(cls.FIELDS, default=0) + 1
        spec: list = [None] * size
        for fid, (name, ttype, fspec, _default, _optional) in cls.FIELDS.items():
            spec[fid] = (fid, ttype, name, fspec, None)
        cls.thrift_spec = tuple(spec)

    def __init__(self, **values) -> None:
        for name, _ttype, _spec, default, optional in self.FIELDS.values():
            value = values.pop(name, None if optional else default)
            setattr(self, name, value() if callable(value) else value)
        if values:
            raise TypeError(f"{type(self).__name__} has no field {', '.join(values)}")

    def read(self, iprot) -> None:
        iprot.readStruct(self, self.thrift_spec)

    def write(self, oprot) -> None:
        oprot.writeStruct(self, self.thrift_spec)

    def __repr__(self) -> str:
        fields = ", ".join(f"{f[0]}={getattr(self, f[0])!r}" for f in self.FIELDS.values())
        return f"{type(self).__name__}({fields})"


OPT = True  # an optional field: written only when set


class PartitionConfiguration(Struct):  # dsn.layer2.thrift
    FIELDS = {1: ("pid", *_struct(Gpid), Gpid, False), 2: ("ballot", TType.I64, None, 0, False),
              3: ("max_replica_count", TType.I32, None, 0, False),
              4: ("primary", *_struct(RpcAddress), RpcAddress, False),
              5: ("secondaries", *_list(TType.STRUCT, (RpcAddress, None)), list, False),
              6: ("last_drops", *_list(TType.STRUCT, (RpcAddress, None)), list, False),
              7: ("last_committed_decree", TType.I64, None, 0, False),
              8: ("partition_flags", TType.I32, None, 0, False),
              # master only
              9: ("hp_primary", *_struct(HostPort), None, OPT),
              10: ("hp_secondaries", *_list(TType.STRUCT, (HostPort, None)), None, OPT),
              11: ("hp_last_drops", *_list(TType.STRUCT, (HostPort, None)), None, OPT)}


class QueryCfgRequest(Struct):  # configuration_query_by_index_request (2.4), query_cfg_request
    FIELDS = {1: ("app_name", TType.STRING, None, "", False),
              2: ("partition_indices", *_list(TType.I32), list, False)}


class QueryCfgResponse(Struct):
    FIELDS = {1: ("err", *_struct(ErrorCode), ErrorCode, False), 2: ("app_id", TType.I32, None, 0, False),
              3: ("partition_count", TType.I32, None, 0, False), 4: ("is_stateful", TType.BOOL, None, False, False),
              5: ("partitions", *_list(TType.STRUCT, (PartitionConfiguration, None)), list, False)}


class CreateAppOptions(Struct):  # meta_admin.thrift
    FIELDS = {1: ("partition_count", TType.I32, None, 0, False), 2: ("replica_count", TType.I32, None, 0, False),
              3: ("success_if_exist", TType.BOOL, None, False, False), 4: ("app_type", TType.STRING, None, "", False),
              5: ("is_stateful", TType.BOOL, None, False, False),
              6: ("envs", TType.MAP, (TType.STRING, None, TType.STRING, None, False), dict, False)}


class CreateAppRequest(Struct):
    FIELDS = {1: ("app_name", TType.STRING, None, "", False),
              2: ("options", *_struct(CreateAppOptions), CreateAppOptions, False)}


class CreateAppResponse(Struct):
    FIELDS = {1: ("err", *_struct(ErrorCode), ErrorCode, False), 2: ("appid", TType.I32, None, 0, False)}


# rrdb.thrift
class UpdateRequest(Struct):
    FIELDS = {1: ("key", *_struct(Blob), Blob, False), 2: ("value", *_struct(Blob), Blob, False),
              3: ("expire_ts_seconds", TType.I32, None, 0, False)}


class UpdateResponse(Struct):
    FIELDS = {1: ("error", TType.I32, None, 0, False), 2: ("app_id", TType.I32, None, 0, False),
              3: ("partition_index", TType.I32, None, 0, False), 4: ("decree", TType.I64, None, 0, False),
              5: ("server", TType.STRING, None, "", False)}


class ReadResponse(Struct):
    FIELDS = {1: ("error", TType.I32, None, 0, False), 2: ("value", *_struct(Blob), Blob, False),
              3: ("app_id", TType.I32, None, 0, False), 4: ("partition_index", TType.I32, None, 0, False),
              6: ("server", TType.STRING, None, "", False)}


class TtlResponse(Struct):
    FIELDS = {1: ("error", TType.I32, None, 0, False), 2: ("ttl_seconds", TType.I32, None, 0, False),
              3: ("app_id", TType.I32, None, 0, False), 4: ("partition_index", TType.I32, None, 0, False),
              6: ("server", TType.STRING, None, "", False)}


class CountResponse(Struct):
    FIELDS = {1: ("error", TType.I32, None, 0, False), 2: ("count", TType.I64, None, 0, False),
              3: ("app_id", TType.I32, None, 0, False), 4: ("partition_index", TType.I32, None, 0, False),
              6: ("server", TType.STRING, None, "", False)}


class KeyValue(Struct):
    FIELDS = {1: ("key", *_struct(Blob), Blob, False), 2: ("value", *_struct(Blob), Blob, False),
              3: ("expire_ts_seconds", TType.I32, None, None, OPT)}


class MultiPutRequest(Struct):
    FIELDS = {1: ("hash_key", *_struct(Blob), Blob, False),
              2: ("kvs", *_list(TType.STRUCT, (KeyValue, None)), list, False),
              3: ("expire_ts_seconds", TType.I32, None, 0, False)}


class MultiRemoveRequest(Struct):
    FIELDS = {1: ("hash_key", *_struct(Blob), Blob, False),
              2: ("sort_keys", *_list(TType.STRUCT, (Blob, None)), list, False),
              3: ("max_count", TType.I64, None, 0, False)}


class MultiRemoveResponse(Struct):
    FIELDS = {1: ("error", TType.I32, None, 0, False), 2: ("count", TType.I64, None, 0, False),
              3: ("app_id", TType.I32, None, 0, False), 4: ("partition_index", TType.I32, None, 0, False),
              5: ("decree", TType.I64, None, 0, False), 6: ("server", TType.STRING, None, "", False)}


class MultiGetRequest(Struct):
    FIELDS = {1: ("hash_key", *_struct(Blob), Blob, False),
              2: ("sort_keys", *_list(TType.STRUCT, (Blob, None)), list, False),
              3: ("max_kv_count", TType.I32, None, 0, False), 4: ("max_kv_size", TType.I32, None, 0, False),
              5: ("no_value", TType.BOOL, None, False, False), 6: ("start_sortkey", *_struct(Blob), Blob, False),
              7: ("stop_sortkey", *_struct(Blob), Blob, False), 8: ("start_inclusive", TType.BOOL, None, False, False),
              9: ("stop_inclusive", TType.BOOL, None, False, False),
              10: ("sort_key_filter_type", TType.I32, None, 0, False),
              11: ("sort_key_filter_pattern", *_struct(Blob), Blob, False),
              12: ("reverse", TType.BOOL, None, False, False)}


class MultiGetResponse(Struct):
    FIELDS = {1: ("error", TType.I32, None, 0, False),
              2: ("kvs", *_list(TType.STRUCT, (KeyValue, None)), list, False),
              3: ("app_id", TType.I32, None, 0, False), 4: ("partition_index", TType.I32, None, 0, False),
              6: ("server", TType.STRING, None, "", False)}


class GetScannerRequest(Struct):
    FIELDS = {1: ("start_key", *_struct(Blob), Blob, False), 2: ("stop_key", *_struct(Blob), Blob, False),
              3: ("start_inclusive", TType.BOOL, None, False, False),
              4: ("stop_inclusive", TType.BOOL, None, False, False), 5: ("batch_size", TType.I32, None, 0, False),
              6: ("no_value", TType.BOOL, None, False, False), 7: ("hash_key_filter_type", TType.I32, None, 0, False),
              8: ("hash_key_filter_pattern", *_struct(Blob), Blob, False),
              9: ("sort_key_filter_type", TType.I32, None, 0, False),
              10: ("sort_key_filter_pattern", *_struct(Blob), Blob, False),
              11: ("validate_partition_hash", TType.BOOL, None, None, OPT),
              12: ("return_expire_ts", TType.BOOL, None, None, OPT),
              13: ("full_scan", TType.BOOL, None, None, OPT),
              14: ("only_return_count", TType.BOOL, None, None, OPT)}


class ScanRequest(Struct):
    FIELDS = {1: ("context_id", TType.I64, None, 0, False)}


class ScanResponse(Struct):
    FIELDS = {1: ("error", TType.I32, None, 0, False),
              2: ("kvs", *_list(TType.STRUCT, (KeyValue, None)), list, False),
              3: ("context_id", TType.I64, None, 0, False), 4: ("app_id", TType.I32, None, 0, False),
              5: ("partition_index", TType.I32, None, 0, False), 6: ("server", TType.STRING, None, "", False),
              7: ("kv_count", TType.I32, None, None, OPT)}


class RequestMetaV1(Struct):  # src/runtime/rpc/request_meta.thrift (v2.5.0)
    FIELDS = {1: ("app_id", TType.I32, None, None, OPT), 2: ("partition_index", TType.I32, None, None, OPT),
              3: ("client_timeout", TType.I32, None, None, OPT),
              4: ("client_partition_hash", TType.I64, None, None, OPT),
              5: ("is_backup_request", TType.BOOL, None, None, OPT)}


# ------------------------------------------------------------------ framing

@dataclass
class Request:
    name: str
    seqid: int
    mtype: int
    app_id: int
    partition_index: int
    timeout_ms: int
    partition_hash: int
    backup: bool
    header_version: int
    proto: TBinaryProtocol  # positioned after the message begin: the arguments

    @property
    def oneway(self) -> bool:
        return self.mtype == TMessageType.ONEWAY

    @property
    def thread_hash(self) -> int:
        """gpid_to_thread_hash (thrift_message_parser.cpp): which worker serves it."""
        return self.app_id * 7919 + self.partition_index


def _protocol(data: bytes) -> TBinaryProtocol:
    return TBinaryProtocol(TMemoryBuffer(data))  # strictRead off, as the C++ default


def read_request(read_exact: Callable[[int], bytes]) -> Request | None:
    """The next request of a session (None at the end of the stream). `read_exact(n)`
    returns n bytes, or fewer when the peer closed."""
    head = read_exact(8)
    if not head:
        return None
    if len(head) < 8:
        raise Malformed("connection closed inside a header")
    if head[:4] != THFT:
        raise Malformed(f"hdr_type mismatch {head[:4]!r}")
    version = struct.unpack(">I", head[4:])[0]
    if version == 0:
        rest = read_exact(HEADER_V0 - 8)
        if len(rest) < HEADER_V0 - 8:
            raise Malformed("connection closed inside a header")
        hdr_length = struct.unpack(">I", rest[:4])[0]
        if hdr_length != HEADER_V0:
            raise Malformed(f"hdr_length should be {HEADER_V0}, but {hdr_length}")
        (_crc, body_length, _body_crc, app_id, pidx, timeout, _thread_hash,
         partition_hash) = V0_META.unpack(rest[4:])
        backup = False
    elif version == 1:
        rest = read_exact(8)
        if len(rest) < 8:
            raise Malformed("connection closed inside a header")
        meta_length, body_length = struct.unpack(">II", rest)
        meta_bytes = read_exact(meta_length)
        if len(meta_bytes) < meta_length:
            raise Malformed("connection closed inside a request meta")
        meta = RequestMetaV1()
        try:
            meta.read(_protocol(meta_bytes))
        except (EOFError, TTransportException, TProtocolException, struct.error) as e:
            raise Fatal(f"thrift_request_meta_v1 unreadable: {e!r}") from e
        app_id, pidx = meta.app_id or 0, meta.partition_index or 0
        timeout, partition_hash = meta.client_timeout or 0, meta.client_partition_hash or 0
        backup = bool(meta.is_backup_request)
    else:
        raise Malformed(f"invalid hdr_version {version}")
    body = read_exact(body_length)
    if len(body) < body_length:
        raise Malformed("connection closed inside a body")
    proto = _protocol(body)
    try:
        name, mtype, seqid = proto.readMessageBegin()
    except (EOFError, TTransportException, TProtocolException, struct.error) as e:
        raise Fatal(f"message begin unreadable: {e!r}") from e
    if mtype not in (TMessageType.CALL, TMessageType.ONEWAY):
        raise Malformed(f"invalid message type: {mtype}")
    if isinstance(name, bytes):
        name = name.decode("utf-8", "replace")
    return Request(name=name, seqid=seqid, mtype=mtype, app_id=app_id & 0xFFFFFFFF,
                   partition_index=pidx & 0xFFFFFFFF, timeout_ms=timeout, partition_hash=partition_hash,
                   backup=backup, header_version=version, proto=proto)


def read_args(request: Request, read_value: Callable[[TBinaryProtocol], Any]) -> Any:
    """The request's one argument: unmarshall_thrift_internal reads the first field's
    value whatever its id and type, then one more field header."""
    proto = request.proto
    try:
        proto.readStructBegin()
        proto.readFieldBegin()
        value = read_value(proto)
        proto.readFieldEnd()
        proto.readFieldBegin()
        proto.readStructEnd()
    except (EOFError, TTransportException, TProtocolException, struct.error, UnicodeDecodeError) as e:
        raise Fatal(f"{request.name}: arguments unreadable: {e!r}") from e
    return value


def read_struct(cls) -> Callable[[TBinaryProtocol], Any]:
    def read(proto):
        value = cls()
        value.read(proto)
        return value
    return read


def read_blob(proto: TBinaryProtocol) -> bytes:
    return proto.readBinary()


def read_i64(proto: TBinaryProtocol) -> int:
    return proto.readI64()


def encode_reply(error: str, name: str, seqid: int, result: Struct | None = None) -> bytes:
    """thrift_message_parser::prepare_on_send: length, error name, message begin, then the
    result wrapped as field 0 of a struct (nothing when the reply carries an error)."""
    out = TMemoryBuffer()
    proto = TBinaryProtocol(out)
    proto.writeI32(0)
    proto.writeBinary(error.encode())
    proto.writeMessageBegin(name, TMessageType.REPLY, seqid)
    if result is not None:
        proto.writeStructBegin("thrift_rpc_result")
        proto.writeFieldBegin("success", TType.STRUCT, 0)
        result.write(proto)
        proto.writeFieldEnd()
        proto.writeFieldStop()
        proto.writeStructEnd()
    proto.writeMessageEnd()
    data = out.getvalue()
    return struct.pack(">i", len(data)) + data[4:]


# ------------------------------------------------------------------ the client side (tests, tools)

def encode_request(name: str, seqid: int, argument: Struct | bytes | int, *, app_id: int = 0, pidx: int = 0,
                   header_version: int = 0, oneway: bool = False, timeout_ms: int = 0,
                   backup: bool = False) -> bytes:
    """A request as Apache's clients send it: v0 header (the Python and Java clients) or
    v1 (the Go client since 2.x)."""
    out = TMemoryBuffer()
    proto = TBinaryProtocol(out)
    proto.writeMessageBegin(name, TMessageType.ONEWAY if oneway else TMessageType.CALL, seqid)
    proto.writeStructBegin("args")
    if isinstance(argument, Struct):
        proto.writeFieldBegin("request", TType.STRUCT, 1)
        argument.write(proto)
    elif isinstance(argument, bytes):
        proto.writeFieldBegin("key", TType.STRUCT, 1)
        proto.writeBinary(argument)
    else:
        proto.writeFieldBegin("context_id", TType.I64, 1)
        proto.writeI64(argument)
    proto.writeFieldEnd()
    proto.writeFieldStop()
    proto.writeStructEnd()
    proto.writeMessageEnd()
    body = out.getvalue()
    if header_version == 0:
        thread_hash = app_id * 7919 + pidx
        return THFT + struct.pack(">II", 0, HEADER_V0) + V0_META.pack(
            0, len(body), 0, app_id, pidx, timeout_ms, thread_hash, 0) + body
    meta_out = TMemoryBuffer()
    RequestMetaV1(app_id=app_id, partition_index=pidx, client_timeout=timeout_ms,
                  is_backup_request=backup).write(TBinaryProtocol(meta_out))
    meta = meta_out.getvalue()
    return THFT + struct.pack(">III", 1, len(meta), len(body)) + meta + body


@dataclass
class Reply:
    error: str
    name: str
    seqid: int
    proto: TBinaryProtocol  # positioned at the result struct (when error is ERR_OK)

    def result(self, cls):
        """The response held in the result struct's field 0."""
        self.proto.readStructBegin()
        _, ftype, fid = self.proto.readFieldBegin()
        if ftype != TType.STRUCT or fid != 0:
            raise ValueError(f"{self.name}: no result in the reply (field {fid}, type {ftype})")
        value = cls()
        value.read(self.proto)
        return value


def read_reply(read_exact: Callable[[int], bytes]) -> Reply | None:
    head = read_exact(4)
    if len(head) < 4:
        return None
    length = struct.unpack(">i", head)[0]
    rest = read_exact(length - 4)
    if len(rest) < length - 4:
        return None
    proto = _protocol(rest)
    error = proto.readBinary().decode()
    name, _mtype, seqid = proto.readMessageBegin()
    return Reply(error=error, name=name if isinstance(name, str) else name.decode(), seqid=seqid, proto=proto)


def socket_reader(sock: socket.socket) -> Callable[[int], bytes]:
    """read_exact over a socket: n bytes, or what arrived before the peer closed."""
    def read_exact(n: int) -> bytes:
        chunks, left = [], n
        while left > 0:
            chunk = sock.recv(min(left, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    return read_exact
