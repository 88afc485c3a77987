"""How a cluster names its resources: every one under the cluster's resource name.

A URN is `stack::project::<parent types>$<type>::<name>`: the parent's *name*
is not in it, so two PegasusClusters in one program would both register
`replica-0` unless each resource's own name carries its cluster's:
`c1-replica-0`, `c1-replica-0-data1`, `c1-meta-0-prepare`. Names of the
cluster's own resources (`c1-vpc`, `c1-health`) always started so.

Stacks deployed before named the per-host resources from the host plan alone
(`replica-0`). The cluster that adopts those names gives each renamed resource
`pulumi.Alias(name=<old name>)`: the engine then finds its state under the old
URN and updates it in place rather than creating a new one and deleting the
old (`getOldResource` in pkg/resource/deploy/step_generator.go, pulumi/pulumi
v3.259.0). Only one cluster of a program may adopt them: the engine refuses a
second resource claiming the same old URN ("Duplicate resource alias '%v'
applied to resource with URN '%v' conflicting with resource with URN '%v'",
diag 2008 in sdk/go/common/diag/errors.go).

Physical names do not move. The instances' and volumes' `Name` tags are
written from the host plan as before, and no renamed AWS resource (instance,
volume, NIC, attachments) has an autonamed property. One that had would keep
its name too: the alias hands the provider the old inputs, and
pulumi-terraform-bridge reuses an old default ("If we already have a default
value from a previous version of this resource, use that instead",
`applyDefaults` in pkg/tfbridge/schema.go, v3.136.0).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi


@dataclass(frozen=True)
class ResourceNames:
    cluster: str  # the PegasusCluster's resource name
    adopt_old_names: bool  # alias every renamed resource to its name before issue 11

    def __call__(self, old: str) -> str:
        """The name of the resource that was called `old` before names had the cluster's."""
        return f"{self.cluster}-{old}"

    def aliases(self, old: str) -> list[pulumi.Alias]:
        return [pulumi.Alias(name=old)] if self.adopt_old_names else []
