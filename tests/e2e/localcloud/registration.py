"""What the engine learns from a RegisterResource request beyond the mocks' arguments.

`MockResourceArgs` carries type, name and inputs only; the engine also needs the
URN (parent chain and type), dependencies and resource options. The monitor
below builds URNs as the engine does and hands the request's options to the
mocks through a thread-local: the SDK calls `RegisterResource` and, inside it,
`new_resource` on one executor thread.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.settings import get_project, get_stack

from tests.support.alias_urns import alias_urns

ROOT_STACK_TYPE = "pulumi:pulumi:Stack"


def qualified_type(urn: str) -> str:
    """`urn:pulumi:s::p::a$b::name` -> `a$b`."""
    return urn.split("::")[2]


def make_urn(stack: str, project: str, parent: str, type_: str, name: str) -> str:
    # As pulumi/pulumi pkg/resource/deploy/source_eval.go (RegisterResource) with
    # sdk/go/common/resource/urn.go (NewURN): the parent's whole qualified type,
    # unless the parent is the root stack, prefixes the type with `$`. (The SDK's
    # MockMonitor keeps only the parent's last type and the stack's.)
    if parent and qualified_type(parent) != ROOT_STACK_TYPE:
        type_ = f"{qualified_type(parent)}${type_}"
    return f"urn:pulumi:{stack}::{project}::{type_}::{name}"


@dataclass
class Registration:
    urn: str
    parent: str
    custom: bool
    dependencies: list[str] = field(default_factory=list)
    ignore_changes: list[str] = field(default_factory=list)
    replace_on_changes: list[str] = field(default_factory=list)
    delete_before_replace: bool = False
    retain_on_delete: bool = False
    aliases: list[str] = field(default_factory=list)  # the URNs its aliases name


class OptionsAwareMonitor(MockMonitor):
    """The SDK's mock monitor, with engine URNs and the request's options for the mocks."""

    current = threading.local()

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        return make_urn(get_stack(), get_project(), parent, type_, name)

    def RegisterResource(self, request):
        deps = set(request.dependencies)
        for prop in request.propertyDependencies.values():
            deps.update(prop.urns)
        OptionsAwareMonitor.current.value = Registration(
            urn=self.make_urn(request.parent, request.type, request.name),
            parent=request.parent, custom=bool(request.custom), dependencies=sorted(deps),
            ignore_changes=list(request.ignoreChanges),
            replace_on_changes=list(request.replaceOnChanges),
            delete_before_replace=bool(request.deleteBeforeReplace),
            retain_on_delete=bool(request.retainOnDelete),
            aliases=alias_urns(request.aliases, name=request.name, type_=request.type, parent=request.parent,
                               make_urn=self.make_urn))
        try:
            return super().RegisterResource(request)
        finally:
            OptionsAwareMonitor.current.value = None


def current_registration() -> Registration | None:
    return getattr(OptionsAwareMonitor.current, "value", None)
