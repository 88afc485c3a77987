"""Old module paths, kept importable: the one table of where each module went.

Until the tree was split into layers, every module lived directly under
`components/`. The state of every stack deployed before holds its dynamic
providers pickled *by reference* (dill: `components.rolling_restart` +
`RollingRestartProvider`), and Pulumi unpickles them at `up`, `refresh` and
`destroy` from the project directory. So each old path must still import, and
give the very module that now holds the code: a stack deployed by an old
version then runs today's provider, and a new `up` records the new path.

`install()` (called by components/__init__.py) adds an import hook that
answers for the old names only; nothing is imported until someone asks for an
old name. tests/unit/test_legacy_paths.py loads providers pickled by the
version before the move (tests/fixtures/legacy_providers/) and runs them.

`components.spec` was a module and is now the layer-0 package: it re-exports
the API a program used from it (build_spec, SpecError, ClusterSpec, NAMESPACE).

When a module moves again: add its old path here, pointing at the new one,
and never remove a line (some stack somewhere may still name it).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from types import ModuleType

# old dotted path -> the module that holds its code now
LEGACY_MODULES = {
    # dynamic providers pickled into existing stacks' state
    "components.cluster_health": "components.operations.cluster_health",
    "components.fixed_settings": "components.operations.fixed_settings",
    "components.rolling_restart": "components.operations.rolling_restart",
    "components.zookeeper_path_guard": "components.operations.zookeeper_path_guard",
    # every other module of the flat tree, for programs that import them
    "components.admin_shell": "components.operations.admin_shell",
    "components.admin_tools": "components.resources.tools_install",
    "components.cluster": "components.resources.cluster",
    "components.config_ini": "components.render.config_ini",
    "components.dynamic_inputs": "components.operations.provider_inputs",
    "components.host": "components.resources.aws_host",
    "components.host_files": "components.render.templates",
    "components.host_layout": "components.render.host_layout",
    "components.host_preparation": "components.resources.host_preparation",
    "components.network": "components.resources.network",
    "components.own_servers": "components.resources.own_host",
    "components.own_servers_spec": "components.spec.own_servers",
    "components.package": "components.spec.server_package",
    "components.package_store": "components.resources.package_store",
    "components.pegasus_server": "components.resources.pegasus_server",
    "components.remote_command": "components.resources.remote_command",
    "components.replica_drain": "components.operations.replica_drain",
    "components.resource_names": "components.resources.resource_names",
    "components.server_files": "components.render.server_files",
    "components.ssh_exec": "components.ssh.session",
    "components.ssh_tunnel": "components.ssh.tunnel",
    "components.stack_config": "components.spec.stack_config",
    "components.tools_package": "components.spec.tools_package",
    "components.topology": "components.spec.topology",
    "components.zookeeper": "components.resources.zookeeper_ensemble",
}


class _LegacyLoader(importlib.abc.Loader):
    """Loads an old name as the module its code lives in now (the same object, not a copy)."""

    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(self.target)
        self._own_spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        # The import system stamped the old name's spec on the module: give it back its own,
        # so it keeps its identity (__name__ was left alone: it was already set).
        module.__spec__ = self._own_spec


class _LegacyFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        new = LEGACY_MODULES.get(fullname)
        if new is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _LegacyLoader(new))


def install() -> None:
    """Make the old paths importable (once per interpreter)."""
    if not any(isinstance(finder, _LegacyFinder) for finder in sys.meta_path):
        sys.meta_path.append(_LegacyFinder())
