"""The URNs a registration's aliases name, as the Pulumi engine computes them.

pulumi/pulumi v3.259.0, pkg/resource/deploy/step_generator.go,
`collapseAliasToUrn`: an alias sent as a URN names that URN; an alias spec's
empty name or type is the resource's own, its parent (none given) is the
resource's parent, `noParent` means none, and the URN is then made as the
resource's own is (sdk/go/common/resource/alias.go, `CreateURN`: the parent's
URN up to its name, `$`, the type, `::`, the name; a root-stack parent counts
as none). `make_urn(parent, type, name)` is the URN rule of whoever registered
the resource (the engine's, or the SDK MockMonitor's), so the alias of a
renamed resource names exactly the URN it had before.

Left out, because no alias of this program uses them: a spec's own parent, whose
URN the engine swaps for the alias that parent matched, and another stack or
project. Such an alias is refused here rather than computed wrongly. Nor are
the aliases the engine multiplies out from a parent's (`generateAliases`):
every renamed resource here carries its own.
"""

from __future__ import annotations

from typing import Callable, Iterable

from pulumi.runtime.proto import alias_pb2


def alias_urns(aliases: Iterable[alias_pb2.Alias], *, name: str, type_: str, parent: str,
               make_urn: Callable[[str, str, str], str]) -> list[str]:
    urns = []
    for alias in aliases:
        if alias.WhichOneof("alias") == "urn":
            urns.append(alias.urn)
            continue
        spec = alias.spec
        if spec.parentUrn or spec.stack or spec.project:
            raise ValueError(f"{name}: an alias with its own parent, stack or project is not modelled: {spec}")
        urns.append(make_urn("" if spec.noParent else parent, spec.type or type_, spec.name or name))
    return urns
