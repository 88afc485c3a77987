"""The few private parts of the Pulumi SDK this project reads, pinned.

No public API lists every config key (typos included) or the secret keys
(components/spec/stack_config.py), and the in-process runner must reset the SDK's
state between runs (tests/support/pulumi_program.py). An SDK upgrade that
moves them fails here, by name, instead of somewhere obscure.
"""

from __future__ import annotations

import pulumi
from pulumi.runtime import config as runtime_config
from pulumi.runtime import settings as runtime_settings

USED_BY = "components/spec/stack_config.py and tests/support/pulumi_program.py"


def test_the_config_internals_the_program_reads_are_there():
    for name in ("CONFIG", "_SECRET_KEYS", "get_config_env", "get_config_secret_keys_env", "set_all_config"):
        assert hasattr(runtime_config, name), (
            f"pulumi {pulumi.__version__}: pulumi.runtime.config.{name} is gone; update {USED_BY}")
    assert callable(runtime_config.CONFIG.get) and callable(runtime_config._SECRET_KEYS.get), (
        f"pulumi {pulumi.__version__}: CONFIG/_SECRET_KEYS are no longer context variables; update {USED_BY}")


def test_the_settings_the_runner_resets_are_there():
    settings = runtime_settings.SETTINGS
    for name in ("rpc_manager", "outputs"):
        assert hasattr(settings, name), f"pulumi {pulumi.__version__}: SETTINGS.{name} is gone; update {USED_BY}"
    assert callable(settings.rpc_manager.clear) and hasattr(runtime_settings, "ROOT"), (
        f"pulumi {pulumi.__version__}: the runtime settings changed shape; update {USED_BY}")
