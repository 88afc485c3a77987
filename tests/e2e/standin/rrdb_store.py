"""One replica's data, with the semantics of Pegasus's storage (rrdb) operations.

Modelled on apache/incubator-pegasus v2.5.0 (the same at v2.4.0 and master unless
said): src/server/pegasus_server_impl.cpp (on_get, on_multi_get, on_sortkey_count,
on_ttl, on_get_scanner, on_scan, on_clear_scanner, validate_filter,
append_key_value*), src/server/pegasus_write_service_impl.h (put, multi_put,
remove, multi_remove), src/base/pegasus_key_schema.h (keys), src/base/pegasus_utils.h
(epoch), src/server/pegasus_scan_context.h (scanner contexts).

A key is RocksDB's: big-endian u16 hash key length, hash key, sort key; keys are
ordered bytewise, so a hash key's sort keys are contiguous and hash keys are not
ordered by themselves. A value carries its expiry, seconds since 2016-01-01
(0: none); an expired record reads as not found. Results carry rocksdb::Status
codes (`error`), which the clients turn into their own.

What RocksDB does not do here: compaction, checkpoints as files, column families.
The data is kept in memory and on disk in the replica's directory under a data dir
(`<data dir>/reps/<app_id>.<pidx>.pegasus`, replica_stub.cpp): a checkpoint file and
a log of the mutations since, each written (not fsynced: what a crashed process
wrote survives, as the page cache holds it; the real private log is not fsynced per
mutation either) before the mutation is acknowledged.
"""

from __future__ import annotations

import base64
import bisect
import collections
import json
import os
import random
import struct
import threading
import time
from dataclasses import dataclass, field

EPOCH_BEGIN = 1451606400  # pegasus_utils.h epoch_begin

# rocksdb::Status::Code
K_OK, K_NOT_FOUND, K_INVALID_ARGUMENT, K_INCOMPLETE = 0, 1, 4, 7
# filter_type (rrdb.thrift)
FT_NO_FILTER, FT_MATCH_ANYWHERE, FT_MATCH_PREFIX, FT_MATCH_POSTFIX = 0, 1, 2, 3
SCAN_CONTEXT_ID_COMPLETED = -1  # pegasus_const.h
COMPACT_EVERY = 2000  # mutations in the log before it is folded into the checkpoint
# The mutations a primary keeps to re-prepare for a member that missed them
# (replica_config.cpp replay_prepare_list; the real prepare list holds
# max_mutation_count_in_prepare_list = 110 by default).
RECENT_MUTATIONS = 110


def epoch_now() -> int:
    return int(time.time()) - EPOCH_BEGIN


def generate_key(hash_key: bytes, sort_key: bytes = b"") -> bytes:
    if len(hash_key) >= 0xFFFF:
        raise ValueError("hash key too long")
    return struct.pack(">H", len(hash_key)) + hash_key + sort_key


def next_blob(prefix: bytes) -> bytes:
    """pegasus_generate_next_blob: the smallest key above every key starting with `prefix`."""
    data = bytearray(prefix)
    i = len(data) - 1
    while i >= 0 and data[i] == 0xFF:
        i -= 1
    data[i] += 1
    return bytes(data[:i + 1])


def restore_key(key: bytes) -> tuple[bytes, bytes]:
    length = struct.unpack(">H", key[:2])[0] if len(key) >= 2 else 0
    return key[2:2 + length], key[2 + length:]


def expired(expire_ts: int, now: int) -> bool:
    return 0 < expire_ts <= now  # check_if_ts_expired


def filter_supported(kind: int) -> bool:
    return FT_NO_FILTER <= kind <= FT_MATCH_POSTFIX


def passes(kind: int, pattern: bytes, value: bytes) -> bool:
    """validate_filter."""
    if kind == FT_NO_FILTER or not pattern:
        return True
    if len(value) < len(pattern):
        return False
    if kind == FT_MATCH_ANYWHERE:
        return pattern in value
    if kind == FT_MATCH_PREFIX:
        return value.startswith(pattern)
    return value.endswith(pattern)


@dataclass
class Limits:
    """[pegasus.server] (config.ini of every tag): rocksdb_multi_get_max_iteration_count,
    rocksdb_multi_get_max_iteration_size, rocksdb_max_iteration_count."""
    multi_get_count: int = 3000
    multi_get_size: int = 31457280
    iteration_count: int = 1000


@dataclass
class ScanContext:
    """pegasus_scan_context: an iterator over a snapshot (the rest of the range)."""
    items: list  # [(key, value, expire_ts)] still to visit, in key order
    stop: bytes
    stop_inclusive: bool
    hash_filter: tuple[int, bytes]
    sort_filter: tuple[int, bytes]
    batch_size: int
    no_value: bool
    return_expire_ts: bool
    only_return_count: bool
    created: float = field(default_factory=time.monotonic)


class PartitionStore:
    """The data of one replica: sorted keys, values with their expiry, the last decree."""

    CONTEXT_TTL = 300.0  # on_get_scanner: a context is dropped 5 minutes after its last use

    def __init__(self, directory: str, limits: Limits | None = None) -> None:
        self.directory = directory
        self.limits = limits or Limits()
        self.lock = threading.RLock()
        self.data: dict[bytes, tuple[bytes, int]] = {}
        self.keys: list[bytes] = []
        self.decree = 0
        self.ballot = 0  # the ballot of the primary that sent the last mutation
        self.recent: collections.deque = collections.deque(maxlen=RECENT_MUTATIONS)  # (decree, ballot, ops)
        self._undo: list | None = None  # the last mutation's keys with what they held before
        self.contexts: dict[int, ScanContext] = {}
        # pegasus_context_cache: a random start, so a restarted server reuses no id
        self._next_context = random.randrange(1 << 31) << 32
        self._logged = 0
        os.makedirs(directory, exist_ok=True)
        self._load()
        self._log = open(self._log_path, "a", encoding="utf-8")  # noqa: SIM115 - kept open

    # -- persistence
    @property
    def _checkpoint_path(self) -> str:
        return os.path.join(self.directory, "standin.checkpoint")

    @property
    def _log_path(self) -> str:
        return os.path.join(self.directory, "standin.log")

    def _load(self) -> None:
        try:
            with open(self._checkpoint_path, encoding="utf-8") as f:
                checkpoint = json.load(f)
        except (OSError, ValueError):
            checkpoint = {"decree": 0, "data": []}
        self.decree, self.ballot = checkpoint["decree"], checkpoint.get("ballot", 0)
        for key, value, expire in checkpoint["data"]:
            self._put(bytes.fromhex(key), base64.b64decode(value), expire)
        try:
            with open(self._log_path, encoding="utf-8") as f:
                for line in f:
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        break  # a torn last line: that mutation was never acknowledged
                    if entry["d"] > self.decree:
                        self._undo = self._apply_ops(entry["ops"])
                        self.decree, self.ballot = entry["d"], entry.get("b", 0)
                        self.recent.append((self.decree, self.ballot, entry["ops"]))
                        self._logged += 1
        except OSError:
            pass

    def _checkpoint(self) -> None:
        tmp = self._checkpoint_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"decree": self.decree, "ballot": self.ballot, "data": [
                [k.hex(), base64.b64encode(v).decode(), e] for k, (v, e) in sorted(self.data.items())]}, f)
        os.replace(tmp, self._checkpoint_path)
        self._log.close()
        self._log = open(self._log_path, "w", encoding="utf-8")  # noqa: SIM115
        self._logged = 0

    def close(self) -> None:
        with self.lock:
            self.contexts.clear()
            self._log.close()

    # -- mutations (the primary and every secondary apply the same list with the same decree)
    def _put(self, key: bytes, value: bytes, expire: int) -> None:
        if key not in self.data:
            bisect.insort(self.keys, key)
        self.data[key] = (value, expire)

    def _delete(self, key: bytes) -> None:
        if key in self.data:
            del self.data[key]
            self.keys.pop(bisect.bisect_left(self.keys, key))

    def _apply_ops(self, ops: list) -> list:
        """Applies the ops; returns each key touched with what it held before (None: absent)."""
        undo = []
        for op in ops:
            key = bytes.fromhex(op[1])
            undo.append((key, self.data.get(key)))
            if op[0] == "put":
                self._put(key, base64.b64decode(op[2]), op[3])
            else:
                self._delete(key)
        return undo

    def apply(self, decree: int, ops: list, ballot: int = 0) -> None:
        """Applies one mutation (a list of ["put", key hex, value b64, expire] and
        ["del", key hex]) as decree `decree`, sent by a primary at `ballot`, logged
        before it returns."""
        with self.lock:
            if decree != self.decree + 1:
                raise ValueError(f"decree {decree} does not follow {self.decree}")
            self._log.write(json.dumps({"d": decree, "b": ballot, "ops": ops}) + "\n")
            self._log.flush()
            self._undo = self._apply_ops(ops)
            self.decree, self.ballot = decree, ballot
            self.recent.append((decree, ballot, ops))
            self._logged += 1
            if self._logged >= COMPACT_EVERY:
                self._checkpoint()

    def replace_last(self, ops: list, ballot: int) -> str | None:
        """A newer primary's mutation for this replica's last decree takes the place of
        the one an older primary prepared and never committed (mutation_cache.cpp put at
        v2.5.0: a mutation of a higher ballot replaces the one at its decree): "same" when it is
        that mutation again, "replaced" when it differs, None when the last mutation
        cannot be undone here (learned, or folded into the checkpoint before a restart)."""
        with self.lock:
            last = self.recent[-1] if self.recent and self.recent[-1][0] == self.decree else None
            if last is not None and last[2] == ops:  # re-prepared at the newer ballot
                self.ballot = ballot
                self.recent[-1] = (self.decree, ballot, ops)
                return "same"
            if self._undo is None:
                return None
            for key, before in reversed(self._undo):
                if before is None:
                    self._delete(key)
                else:
                    self._put(key, *before)
            self._undo = self._apply_ops(ops)
            self.ballot = ballot
            if last is not None:
                self.recent.pop()
            self.recent.append((self.decree, ballot, ops))
            self._checkpoint()  # the log holds the replaced mutation: fold the state in now
            return "replaced"

    def since(self, decree: int) -> list | None:
        """The mutations after `decree`, oldest first, or None when some are no longer kept."""
        with self.lock:
            if decree >= self.decree:
                return []
            kept = [m for m in self.recent if m[0] > decree]
            return kept if kept and kept[0][0] == decree + 1 else None

    def snapshot(self) -> dict:
        """What a learner copies: every record and the decree they reflect."""
        with self.lock:
            return {"decree": self.decree, "ballot": self.ballot, "data": [
                [k.hex(), base64.b64encode(v).decode(), e] for k, (v, e) in self.data.items()]}

    def replace(self, snapshot: dict) -> None:
        """Takes a learned snapshot as this replica's whole state."""
        with self.lock:
            self.data, self.keys, self.contexts = {}, [], {}
            for key, value, expire in snapshot["data"]:
                self._put(bytes.fromhex(key), base64.b64decode(value), expire)
            self.decree, self.ballot = snapshot["decree"], snapshot.get("ballot", 0)
            self.recent.clear()
            self._undo = None
            self._checkpoint()


# ------------------------------------------------------------------ writes: request -> mutation, result

def put_ops(key: bytes, value: bytes, expire: int) -> list:
    return [["put", key.hex(), base64.b64encode(value).decode(), expire & 0xFFFFFFFF]]


def multi_put_ops(hash_key: bytes, kvs: list[tuple[bytes, bytes]], expire: int) -> tuple[list, int]:
    """pegasus_write_service_impl.h multi_put: every sort key under the request's expiry
    (a key_value's own expire_ts_seconds is not used); an empty list is kInvalidArgument
    (still a mutation: it advances the decree)."""
    if not kvs:
        return [], K_INVALID_ARGUMENT
    return [op for sort_key, value in kvs for op in put_ops(generate_key(hash_key, sort_key), value, expire)], K_OK


def remove_ops(key: bytes) -> list:
    return [["del", key.hex()]]


def multi_remove_ops(hash_key: bytes, sort_keys: list[bytes]) -> tuple[list, int, int]:
    """(ops, error, count): an empty list is kInvalidArgument; count is the number of sort keys given."""
    if not sort_keys:
        return [], K_INVALID_ARGUMENT, 0
    return [op for s in sort_keys for op in remove_ops(generate_key(hash_key, s))], K_OK, len(sort_keys)


# ------------------------------------------------------------------ reads

def get(store: PartitionStore, key: bytes) -> tuple[int, bytes]:
    with store.lock:
        record = store.data.get(key)
    if record is None or expired(record[1], epoch_now()):
        return K_NOT_FOUND, b""
    return K_OK, record[0]


def ttl(store: PartitionStore, key: bytes) -> tuple[int, int]:
    """on_ttl: -1 without expiry, else the seconds left."""
    now = epoch_now()
    with store.lock:
        record = store.data.get(key)
    if record is None or expired(record[1], now):
        return K_NOT_FOUND, 0
    return K_OK, record[1] - now if record[1] > 0 else -1


def _range(store: PartitionStore, start: bytes, stop: bytes, beyond: bool = False) -> list:
    """(key, value, expire) from `start` up to `stop` included, in order; with `beyond`
    also the first key after `stop`, if any (where a RocksDB iterator would still be valid)."""
    with store.lock:
        low = bisect.bisect_left(store.keys, start)
        high = bisect.bisect_right(store.keys, stop)
        if beyond:
            high = min(high + 1, len(store.keys))
        return [(k, *store.data[k]) for k in store.keys[low:high]]


def _key_below(store: PartitionStore, start: bytes) -> bool:
    with store.lock:
        return bisect.bisect_left(store.keys, start) > 0


def sortkey_count(store: PartitionStore, hash_key: bytes) -> tuple[int, int]:
    """on_sortkey_count: the unexpired records under the hash key (the scan has no count
    limit, only the time threshold)."""
    start, stop = generate_key(hash_key), next_blob(generate_key(hash_key))
    now = epoch_now()
    return K_OK, sum(1 for k, _v, e in _range(store, start, stop) if k < stop and not expired(e, now))


def multi_get(store: PartitionStore, hash_key: bytes, sort_keys: list[bytes], max_kv_count: int,
              max_kv_size: int, no_value: bool, start_sortkey: bytes, stop_sortkey: bytes,
              start_inclusive: bool, stop_inclusive: bool, filter_type: int, filter_pattern: bytes,
              reverse: bool) -> tuple[int, list[tuple[bytes, bytes]]]:
    """on_multi_get: (error, [(sort key, value)]) in sort key order."""
    if not filter_supported(filter_type):
        return K_INVALID_ARGUMENT, []
    limit_count = store.limits.multi_get_count
    if 0 < max_kv_count < limit_count:
        limit_count = max_kv_count
    limit_size = max_kv_size if max_kv_size > 0 else 2**31 - 1
    iteration_size = min(limit_size, store.limits.multi_get_size if store.limits.multi_get_size > 0 else 2**31 - 1)
    now = epoch_now()
    if sort_keys:
        out, size = [], 0
        for sort_key in sort_keys:
            error, value = get(store, generate_key(hash_key, sort_key))
            if error == K_OK:
                if len(out) >= limit_count or size >= limit_size:
                    return K_INCOMPLETE, out
                out.append((sort_key, b"" if no_value else value))
                size += len(sort_key) + (0 if no_value else len(value))
        return K_OK, out

    start = generate_key(hash_key, start_sortkey)
    if stop_sortkey:
        stop = generate_key(hash_key, stop_sortkey)
    else:
        stop, stop_inclusive = next_blob(generate_key(hash_key)), False
    if filter_type == FT_MATCH_PREFIX and filter_pattern:  # the prefix narrows the range
        prefix_start = generate_key(hash_key, filter_pattern)
        prefix_stop = next_blob(prefix_start)
        if prefix_start > start:
            start, start_inclusive = prefix_start, True
        if prefix_stop <= stop:
            stop, stop_inclusive = prefix_stop, False
    if start > stop or (start == stop and not (start_inclusive and stop_inclusive)):
        return K_OK, []
    records = _range(store, start, stop, beyond=not reverse)
    if reverse:
        records.reverse()
        if _key_below(store, start):  # SeekForPrev's iterator stays valid below the range
            records.append((b"", b"", 0))
    out, count, size, iterations, complete = [], 0, 0, 0, False
    first_exclusive = not (stop_inclusive if reverse else start_inclusive)
    index = 0
    while index < len(records) and count < limit_count and iterations < store.limits.multi_get_count \
            and size < iteration_size:
        key, value, expire = records[index]
        bound = start if reverse else stop
        c = (key > bound) - (key < bound)
        if (not reverse and (c > 0 or (c == 0 and not stop_inclusive))) or \
                (reverse and (c < 0 or (c == 0 and not start_inclusive))):
            complete = True
            break
        if first_exclusive:
            first_exclusive = False
            if key == (stop if reverse else start):
                index += 1
                continue
        iterations += 1
        _, sort_key = restore_key(key)
        if not expired(expire, now) and passes(filter_type, filter_pattern, sort_key):
            count += 1
            item = (sort_key, b"" if no_value else value)
            out.append(item)
            size += len(item[0]) + len(item[1])
        if c == 0:
            complete = True
            break
        index += 1
    if reverse:
        out.reverse()
    if index < len(records) and not complete:
        return K_INCOMPLETE, out
    return K_OK, out


def _scan_batch(store: PartitionStore, context: ScanContext) -> tuple[list, int, bool]:
    """One batch of a scan: (kvs, count, complete); consumes context.items."""
    now = epoch_now()
    kvs, count, complete = [], 0, False
    while context.items and count < context.batch_size:
        key, value, expire = context.items[0]
        if key > context.stop or (key == context.stop and not context.stop_inclusive):
            complete = True
            break
        context.items.pop(0)
        hash_key, sort_key = restore_key(key)
        if not expired(expire, now) and passes(*context.hash_filter, hash_key) and \
                passes(*context.sort_filter, sort_key):
            count += 1
            if not context.only_return_count:
                kvs.append((key, b"" if context.no_value else value, expire if context.return_expire_ts else None))
        if key == context.stop:
            complete = True
            break
    return kvs, count, complete or not context.items  # an iterator at the end is not Valid()


def get_scanner(store: PartitionStore, start_key: bytes, stop_key: bytes, start_inclusive: bool,
                stop_inclusive: bool, batch_size: int, no_value: bool, hash_filter: tuple[int, bytes],
                sort_filter: tuple[int, bytes], return_expire_ts: bool = False,
                only_return_count: bool = False) -> tuple[int, list, int, int | None]:
    """on_get_scanner: (error, [(raw key, value, expire or None)], context_id, kv_count)."""
    if not filter_supported(hash_filter[0]) or not filter_supported(sort_filter[0]):
        return K_INVALID_ARGUMENT, [], 0, None
    start = start_key
    if hash_filter[0] == FT_MATCH_PREFIX and hash_filter[1]:
        prefix_start = generate_key(hash_filter[1])
        if prefix_start > start:
            start, start_inclusive = prefix_start, True
    if start > stop_key or (start == stop_key and not (start_inclusive and stop_inclusive)):
        return K_OK, [], 0, None
    batch = store.limits.iteration_count
    if 0 < batch_size < batch:
        batch = batch_size
    items = _range(store, start, stop_key, beyond=True)
    if items and not start_inclusive and items[0][0] == start:
        items.pop(0)
    context = ScanContext(items, stop_key, stop_inclusive, hash_filter, sort_filter, batch, no_value,
                          return_expire_ts, only_return_count)
    return _continue(store, context)


def _continue(store: PartitionStore, context: ScanContext) -> tuple[int, list, int, int | None]:
    kvs, count, complete = _scan_batch(store, context)
    kv_count = count if context.only_return_count else None
    if complete:
        return K_OK, kvs, SCAN_CONTEXT_ID_COMPLETED, kv_count
    with store.lock:
        handle = store._next_context
        store._next_context += 1
        context.created = time.monotonic()
        store.contexts[handle] = context
        for old in [h for h, c in store.contexts.items() if time.monotonic() - c.created > store.CONTEXT_TTL]:
            del store.contexts[old]
    return K_OK, kvs, handle, kv_count


def scan(store: PartitionStore, context_id: int) -> tuple[int, list, int, int | None]:
    """on_scan: the next batch of a context (fetched: it answers once); kNotFound for an
    unknown, expired or completed context."""
    with store.lock:
        context = store.contexts.pop(context_id, None)
    if context is None:
        return K_NOT_FOUND, [], 0, None
    return _continue(store, context)


def clear_scanner(store: PartitionStore, context_id: int) -> None:
    with store.lock:
        store.contexts.pop(context_id, None)
