"""Delete scheduling: dependents before their dependencies, independent deletes together.

As pulumi/pulumi pkg/resource/deploy/step_generator.go (ScheduleDeletes): the
deletes are split into antichains of the dependency graph (recorded
`dependencies` and `parent`), each run in parallel, one after the other; after
a failure the running ones end and nothing new starts.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable


def layers(records: list[dict]) -> list[list[dict]]:
    """Split `records` (each with `urn`, `dependencies`, `parent`) into delete layers."""
    remaining = list(records)
    result = []
    while remaining:
        needed = set()  # urns some remaining record still depends on
        for record in remaining:
            needed.update(record.get("dependencies") or [])
            if record.get("parent"):
                needed.add(record["parent"])
        layer = [r for r in remaining if r["urn"] not in needed or _self_only(r, remaining)]
        if not layer:  # a cycle cannot come from the SDK; delete what is left in order
            layer = remaining[-1:]
        result.append(layer)
        remaining = [r for r in remaining if not any(r is x for x in layer)]
    return result


def _self_only(record: dict, remaining: list[dict]) -> bool:
    """True when only other halves of the same URN (a replacement) depend on it."""
    return all(other["urn"] == record["urn"] for other in remaining
               if record["urn"] in (other.get("dependencies") or []) or other.get("parent") == record["urn"])


def run_layers(records: list[dict], delete: Callable[[dict], None]) -> list[Exception]:
    """Delete layer by layer; stop after the first layer with a failure; return the errors."""
    for layer in layers(records):
        errors = []
        with ThreadPoolExecutor(max_workers=max(1, min(len(layer), 32))) as pool:
            for future in [pool.submit(delete, record) for record in layer]:
                try:
                    future.result()
                except Exception as error:  # every started delete ends before we report
                    errors.append(error)
        if errors:
            return errors
    return []
