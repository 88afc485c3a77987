"""The stack's state between runs: one JSON file, like Pulumi's checkpoint, simplified.

    {"version": 2,
     "resources": {"<urn>": {"urn", "type", "name", "id", "inputs", "extras", "custom",
                             "parent", "dependencies", "retain"}},
     "order": ["<urn>", ...],            # registration order (a valid dependency order)
     "pending_deletes": [{...}, ...]}    # replaced resources whose delete has not run yet

Keyed by URN as Pulumi's checkpoint is (parent chain and type, see
registration.make_urn); `dependencies` and `parent` order the deletes.

`inputs` are the registered inputs in a JSON form (assets become
{"__asset": ..., "sha256": ...} so a changed file counts as a change); `extras`
are the outputs the provider computed (ids, addresses, stdout). A record holds
everything its delete needs (a Command's connection and delete script, a dynamic
resource's serialized provider and outputs, the cloud ids of machines, volumes and
NICs). Secrets (the SSH key in `connection`) are stored in plain text: this file
lives in a test's temporary directory.
"""

from __future__ import annotations

import copy
import json
import os
import threading
from pathlib import Path
from typing import Any


STATE_VERSION = 2


def _migrated(data: dict) -> dict:
    """Version 1 keyed records by `<type>::<name>`; such state cannot be mapped to URNs
    without the program, and lives for one test run only: refuse it clearly."""
    if data.get("version") != STATE_VERSION and data.get("resources"):
        raise RuntimeError("state file from the older (type::name keyed) engine: destroy it with "
                           "that engine, or delete it; this engine keys state by URN")
    return data


class StackState:
    def __init__(self, path: Path):
        self.path = path
        self.lock = threading.RLock()
        if path.exists():
            data = _migrated(json.loads(path.read_text()))
        else:
            data = {"resources": {}, "order": [], "pending_deletes": []}
        self.resources: dict[str, dict[str, Any]] = data["resources"]
        self.order: list[str] = data["order"]
        self.pending_deletes: list[dict[str, Any]] = data["pending_deletes"]

    def get(self, key: str) -> dict[str, Any] | None:
        with self.lock:
            record = self.resources.get(key)
            return copy.deepcopy(record) if record is not None else None

    def get_by_name(self, type_: str, name: str) -> dict[str, Any] | None:
        """The one record of `type_` named `name` (names may repeat under other parents)."""
        with self.lock:
            found = [urn for urn, r in self.resources.items() if r["type"] == type_ and r["name"] == name]
        if len(found) > 1:
            raise KeyError(f"several {type_} named {name!r}: {found}; look up by URN")
        return self.get(found[0]) if found else None

    def find(self, urn_or_name: str) -> list[str]:
        """URNs matching a URN, or a resource name."""
        with self.lock:
            if urn_or_name in self.resources:
                return [urn_or_name]
            return [urn for urn, r in self.resources.items() if r["name"] == urn_or_name]

    def put(self, key: str, record: dict[str, Any]) -> None:
        with self.lock:
            self.resources[key] = copy.deepcopy(record)
            if key not in self.order:
                self.order.append(key)
            self.save()

    def remove(self, key: str) -> None:
        with self.lock:
            self.resources.pop(key, None)
            if key in self.order:
                self.order.remove(key)
            self.save()

    def rename(self, old: str, new: str) -> None:
        """Keep the record of `old` as `new`, and every reference to it (as Pulumi's snapshot
        does for an alias, pkg/resource/deploy/snapshot.go NormalizeURNReferences)."""
        with self.lock:
            self.resources[new] = {**self.resources.pop(old), "urn": new}
            self.order = [new if key == old else key for key in self.order]
            for record in [*self.resources.values(), *self.pending_deletes]:
                if record.get("parent") == old:
                    record["parent"] = new
                record["dependencies"] = [new if d == old else d for d in record.get("dependencies", [])]
            self.save()

    def add_pending_delete(self, record: dict[str, Any]) -> None:
        with self.lock:
            self.pending_deletes.append(copy.deepcopy(record))
            self.save()

    def drop_pending_delete(self, record: dict[str, Any]) -> None:
        with self.lock:
            self.pending_deletes = [r for r in self.pending_deletes if r != record]
            self.save()

    def set_order(self, order: list[str]) -> None:
        with self.lock:
            self.order = [key for key in order if key in self.resources]
            self.save()

    def save(self) -> None:
        with self.lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(
                {"version": STATE_VERSION, "resources": self.resources, "order": self.order,
                 "pending_deletes": self.pending_deletes},
                indent=1, sort_keys=True, default=str))
            os.replace(tmp, self.path)
