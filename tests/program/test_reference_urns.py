"""Existing stacks keep their resources: the URNs of a reference stack stay registered.

A renamed resource, component type or parent changes a URN, and Pulumi then
replaces the resource: for an instance or a volume, a server and its data.
`reference_urns.txt` holds the URNs of the default stack (base_config); a
change that drops one must add an alias (or, for a resource whose
replacement is harmless, regenerate the file and say why in the commit).
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
"""

from __future__ import annotations

import copy
from pathlib import Path

REFERENCE = Path(__file__).with_name("reference_urns.txt")
UPLOAD_ONLY = "-package-upload"


def test_every_reference_urn_is_still_registered(deploy, base_config):
    registered = {r.urn for r in deploy(base_config).resources.values()}
    upload = copy.deepcopy(base_config)
    upload["packageDelivery"] = "upload"
    registered_with_uploads = {r.urn for r in deploy(upload).resources.values()}
    reference = set(REFERENCE.read_text().split())
    missing = sorted(u for u in reference if u not in registered and not u.endswith(UPLOAD_ONLY))
    missing += sorted(u for u in reference if u.endswith(UPLOAD_ONLY) and u not in registered_with_uploads)
    assert not missing, "these resources would be replaced on every existing stack:\n" + "\n".join(missing)
    assert {u for u in reference if u.endswith(UPLOAD_ONLY)}, "the reference lost the upload path's URNs"
