"""Run the real Pulumi program in-process under `pulumi.runtime.set_mocks`.

This is how `pulumi up` would execute `__main__.py`, minus the CLI and the
providers: the mocks stand in for AWS and SSH. Each call gets a fresh runtime
(settings, root stack, config), so runs do not leak into one another.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import runpy
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping

import pulumi
from pulumi.runtime import config as runtime_config
from pulumi.runtime import settings as runtime_settings
from pulumi.runtime.stack import run_in_stack

PROJECT_DIR = Path(__file__).resolve().parents[2]
PROGRAM = PROJECT_DIR / "__main__.py"

# Mocks that block (SSH in the end-to-end suite) must not queue behind the
# SDK's default of min(32, CPUs + 4) threads.
EXECUTOR_THREADS = 64


def stack_config(namespace: str, values: Mapping[str, Any]) -> dict[str, str]:
    """Turn {"clusterName": "c1", "meta": {...}} into Pulumi's flat config map."""
    flat = {}
    for key, value in values.items():
        flat[f"{namespace}:{key}"] = value if isinstance(value, str) else json.dumps(value)
    return flat


def _quiet_about_abandoned_registrations(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    """When a registration fails (a refused check, say), the SDK leaves the futures of the
    others unawaited; asyncio would print each one's copy of that error when it is
    collected. The error itself reaches the caller: anything else is reported as usual."""
    if "never retrieved" in str(context.get("message", "")):
        return
    loop.default_exception_handler(context)


def run_program(
    mocks: pulumi.runtime.Mocks,
    config: Mapping[str, str],
    *,
    program: Path = PROGRAM,
    project: str = "pegasus",
    stack: str = "test",
    secret_keys: Iterable[str] = (),
    preview: bool = False,
    monitor: Any = None,
) -> dict[str, Any]:
    """Run `program` under `mocks`; return the stack's exports (resolved).

    `monitor`: a `pulumi.runtime.mocks.MockMonitor` (subclass) to use instead of
    the default one built from `mocks`, e.g. to record dependencies.
    """
    loop = asyncio.new_event_loop()
    loop.set_default_executor(
        concurrent.futures.ThreadPoolExecutor(max_workers=EXECUTOR_THREADS)
    )
    loop.set_exception_handler(_quiet_about_abandoned_registrations)
    asyncio.set_event_loop(loop)
    try:
        runtime_config.set_all_config(dict(config), list(secret_keys))
        runtime_settings.ROOT.set(None)  # fresh root stack per run
        runtime_settings.SETTINGS.rpc_manager.clear()
        runtime_settings.SETTINGS.outputs.clear()
        pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=preview, monitor=monitor)
        # set_mocks made a root stack for unit tests; run_in_stack makes its own.
        runtime_settings.ROOT.set(None)

        stacks: list[Any] = []

        def program_body() -> None:
            stacks.append(runtime_settings.get_root_resource())
            sys.path.insert(0, str(program.parent))
            try:
                runpy.run_path(str(program), run_name="__main__")
            finally:
                sys.path.remove(str(program.parent))

        loop.run_until_complete(run_in_stack(program_body))
        exports: dict[str, Any] = {}
        for key, value in stacks[0].outputs.items():
            exports[key] = loop.run_until_complete(
                pulumi.Output.from_input(value).future()
            )
        return exports
    finally:
        loop.close()
        asyncio.set_event_loop(None)
