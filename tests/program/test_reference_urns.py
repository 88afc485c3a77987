"""Existing stacks keep their resources: every URN of a reference stack is still registered or aliased.

A renamed resource, component type or parent changes a URN, and Pulumi then
replaces the resource: for an instance or a volume, a server and its data.
`reference_urns.txt` holds the URNs of the default stack (base_config) as the
SDK's MockMonitor names them; a change that drops one must add an alias (or,
for a resource whose replacement is harmless, regenerate the file and say why
in the commit). A URN is kept when the program registers it, or when exactly
one registered resource has an alias naming it (the engine then updates that
resource in place; two claiming it fail the deployment, pulumi/pulumi v3.259.0
pkg/resource/deploy/step_generator.go `getOldResource`, as does an alias
naming a URN that is registered itself).
Last regenerated when the per-server `-roll`, `-meta-roll-leader` and
`-check` commands became one `<cluster>-rolling-restart` (issue 10): they had
no delete command, so Pulumi deleting them from a stack runs nothing.
The package store (issue 10) only added URNs. The per-host package uploads
(`<host>-package-upload`) belong to `packageDelivery: upload` since then: the
default stack fetches from its store instead, so they are checked there. A
stack that moves to the store deletes them, which does nothing on a host
(CopyToRemote has no delete).
`<cluster>-health` became a dynamic resource (issue 9: it fetches the logs of
a server that does not serve); the command it replaces had no delete either.
Since issue 11 per-host resources are named under the cluster (`c1-replica-0`)
and keep these URNs through aliases.
Issue 19 dropped `c1-zookeeper-2181-from-replica` and `-from-collector`: only the
MetaServer talks to ZooKeeper, so existing stacks delete those two rules (a
deleted ingress rule closes the port, nothing else).
"""

from __future__ import annotations

import copy
from collections import Counter
from pathlib import Path

REFERENCE = Path(__file__).with_name("reference_urns.txt")
UPLOAD_ONLY = "-package-upload"


def lost(reference: set[str], deployment) -> list[str]:
    """Reference URNs the deployment would not keep, each with the reason."""
    registered = {urn for urn, _ in deployment.cloud.claims}
    claimed = Counter(alias for _, aliases in deployment.cloud.claims for alias in set(aliases))
    problems = []
    for urn in sorted(reference):
        if urn in registered:
            if claimed[urn]:
                problems.append(f"{urn}: registered, and also named by an alias")
        elif claimed[urn] != 1:
            problems.append(f"{urn}: named by the aliases of {claimed[urn]} resources, not of one")
    return problems


def test_every_reference_urn_is_still_registered_or_aliased_once(deploy, base_config):
    reference = set(REFERENCE.read_text().split())
    upload_only = {u for u in reference if u.endswith(UPLOAD_ONLY)}
    assert upload_only, "the reference lost the upload path's URNs"
    upload = copy.deepcopy(base_config)
    upload["packageDelivery"] = "upload"
    problems = lost(reference - upload_only, deploy(base_config)) + lost(upload_only, deploy(upload))
    assert not problems, "these resources would be replaced on every existing stack:\n" + "\n".join(problems)


def test_the_reference_is_kept_through_aliases_not_by_the_names_it_lists(deploy, base_config):
    # Every per-host resource is now named under its cluster: the check above
    # passes only through the aliases, so dropping one of them fails it.
    registered = {urn for urn, _ in deploy(base_config).cloud.claims}
    reference = set(REFERENCE.read_text().split())
    renamed = {u for u in reference if not u.rsplit("::", 1)[1].startswith("c1-")}
    assert renamed and not renamed & registered
