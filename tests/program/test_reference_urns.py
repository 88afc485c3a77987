"""Existing stacks keep their resources: the URNs of a reference stack stay registered.

A renamed resource, component type or parent changes a URN, and Pulumi then
replaces the resource: for an instance or a volume, a server and its data.
`reference_urns.txt` holds the URNs of the default stack (base_config); a
change that drops one must add an alias (or, for a resource whose
replacement is harmless, regenerate the file and say why in the commit).
Last regenerated when the per-server `-roll`, `-meta-roll-leader` and
`-check` commands became one `<cluster>-rolling-restart` (issue 10): they had
no delete command, so Pulumi deleting them from a stack runs nothing.
"""

from __future__ import annotations

from pathlib import Path

REFERENCE = Path(__file__).with_name("reference_urns.txt")


def test_every_reference_urn_is_still_registered(deploy, base_config):
    registered = {r.urn for r in deploy(base_config).resources.values()}
    missing = sorted(set(REFERENCE.read_text().split()) - registered)
    assert not missing, "these resources would be replaced on every existing stack:\n" + "\n".join(missing)
