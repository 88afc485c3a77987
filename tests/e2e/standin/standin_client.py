"""Client helper for the pegasus_server stand-in's test-double data endpoints.

Not a Pegasus client: it drives the stand-in's `/standin/put` and `/standin/get`
(see pegasus_server.py) on each partition's primary, as a Pegasus client would
route requests, and counts failures. Usage:

    client = StandinClient(["10.0.0.1:34601", "10.0.0.2:34601"], table="stat")
    stats = client.run_load(seconds=30, interval=0.2)   # {"ok": n, "failed": n, "errors": {...}}
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import time
from urllib.parse import quote, urlsplit


def get(address: str, path: str, timeout: float = 2.0, hops: int = 3) -> tuple[int, object]:
    """GET that follows the MetaServers' 307 redirects; (status, parsed JSON or text)."""
    for _ in range(hops + 1):
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():  # a follower that knows no leader yet redirects nowhere
            raise OSError(f"redirected to {address!r} for {path}: no MetaServer leads")
        conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
            if response.status == 307:
                location = urlsplit(response.getheader("Location", ""))
                address, path = location.netloc, location.path + (f"?{location.query}" if location.query else "")
                continue
            try:
                return response.status, json.loads(body or b"null")
            except ValueError:
                return response.status, body.decode(errors="replace")
        finally:
            conn.close()
    raise OSError(f"too many redirects for {path}")


def older(value: str | None, than: int) -> bool:
    """A read value from before round `than` (or none at all)."""
    return not (value or "").isdigit() or int(value or 0) < than


class StandinClient:
    def __init__(self, metas: list[str], table: str = "stat", timeout: float = 0.25):
        # timeout: a request's budget for retries (about five, 8 ms << n apart). It
        # covers what takes milliseconds for the real client too (asking the
        # MetaServer again after a primary moved), not a restart: the stand-in's
        # partitions are reassigned within seconds, where a real ReplicaServer
        # reloads its replicas for far longer than the client's 5 s.
        self.metas, self.table, self.timeout = list(metas), table, timeout
        self.primaries: dict[int, str] = {}
        self.read: str | None = None  # the value the last successful get returned
        self.replica_counts: dict[int, int] = {}  # partition -> replicas the MetaServer lists

    def refresh(self) -> None:
        """Partition -> primary from /meta/app?name=T&detail (any MetaServer; followers redirect)."""
        errors = []
        for meta in self.metas:
            try:
                status, body = get(meta, f"/meta/app?name={quote(self.table)}&detail")
            except (OSError, http.client.HTTPException) as e:
                errors.append(f"{meta}: {e}")
                continue
            if status == 200:
                self.primaries = {int(p): r["primary"] for p, r in body["replicas"].items()}
                # "replica_count": "2/3" (alive / max), as meta_http_service.cpp writes it
                self.replica_counts = {int(p): int(str(r.get("replica_count", "0/0")).split("/")[0])
                                       for p, r in body["replicas"].items()}
                return
            errors.append(f"{meta}: HTTP {status} {body}")
        raise OSError("; ".join(errors))

    def call(self, op: str, partition: int, key: str, value: str = "") -> tuple[bool, str]:
        """One request, retried as a Pegasus client retries it (partition_resolver.cpp,
        v2.5.0: on a failed call the partition's config is queried again and the call
        sent again, 8 ms << n apart, while its timeout lasts). A get's value is kept in
        `self.read`."""
        deadline, retries = time.monotonic() + self.timeout, 0
        while True:
            try:
                ok, why = self._call_once(op, partition, key, value)
            except (OSError, http.client.HTTPException, ValueError, KeyError) as e:
                ok, why = False, f"{type(e).__name__}: {e}"
            gap = min(0.008 * (1 << retries), 1.0)
            if ok or time.monotonic() + gap >= deadline:
                return ok, why
            time.sleep(gap)
            retries += 1
            try:
                self.refresh()
            except OSError:
                pass  # keep the partition table it has, as the client does

    def _call_once(self, op: str, partition: int, key: str, value: str) -> tuple[bool, str]:
        if not self.primaries:
            self.refresh()
        primary = self.primaries.get(partition, "-")
        if primary == "-":
            return False, f"partition {partition} has no primary"
        path = f"/standin/{op}?table={quote(self.table)}&partition={partition}&key={quote(key)}"
        if op == "put":
            path += f"&value={quote(value)}"
        try:
            status, body = get(primary, path)
        except (OSError, http.client.HTTPException) as e:
            return False, f"{primary}: {e}"
        if status != 200:
            return False, f"{primary}: {body.get('error') if isinstance(body, dict) else body}"
        self.read = body.get("value") if isinstance(body, dict) else None
        return True, ""

    def run_load(self, seconds: float, interval: float = 0.2, stop_file: str | None = None) -> dict:
        """Write then read one key per partition every interval, for `seconds` (or
        until `stop_file` exists). Like a Pegasus client, it keeps the partition
        table it has while no MetaServer answers. `below_two`: partitions seen
        with fewer than 2 replicas at any time; `lost`: reads that returned an
        older value than the last write acknowledged for their key."""
        stats: dict = {"ok": 0, "failed": 0, "lost": 0, "errors": {}, "below_two": []}
        below_two: set[int] = set()
        acked: dict[int, int] = {}  # partition -> the last round whose write was acknowledged
        end, n = time.monotonic() + seconds, 0
        while time.monotonic() < end and not (stop_file and os.path.exists(stop_file)):
            try:
                self.refresh()
                below_two |= {p for p, count in self.replica_counts.items() if count < 2}
            except OSError as e:
                if not self.primaries:
                    stats["failed"] += 1
                    stats["errors"][str(e)] = stats["errors"].get(str(e), 0) + 1
                    time.sleep(interval)
                    continue
            for partition in sorted(self.primaries):
                for op in ("put", "get"):
                    self.read = None
                    ok, why = self.call(op, partition, f"k{partition}", str(n))
                    stats["ok" if ok else "failed"] += 1
                    if not ok:
                        stats["errors"][why] = stats["errors"].get(why, 0) + 1
                    elif op == "put":
                        acked[partition] = n
                    elif op == "get" and partition in acked and older(self.read, acked[partition]):
                        stats["lost"] += 1
                        stats["errors"]["lost"] = stats["errors"].get("lost", 0) + 1
            n += 1
            time.sleep(interval)
        stats["below_two"] = sorted(below_two)
        return stats


def main(argv: list[str]) -> int:
    """python3 standin_client.py META[,META...] TABLE SECONDS [STOP_FILE]: prints the stats as JSON."""
    metas, table, seconds = argv[1].split(","), argv[2], float(argv[3])
    stats = StandinClient(metas, table).run_load(seconds, stop_file=argv[4] if len(argv) > 4 else None)
    print(json.dumps(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
