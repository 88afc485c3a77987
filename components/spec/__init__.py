"""Layer 0, pure: the stack's `pegasus:*` config read, validated and planned.

stack_config reads the raw values out of Pulumi's runtime; validation turns
them into the immutable ClusterSpec (model.py) or one SpecError naming every
problem (key, what is wrong, what to do); topology plans the hosts. Server and
tools packages are inspected here, so a bad path fails before anything exists.
Imports nothing from the other layers, and no Pulumi resource.

`components.spec` was once a module; the API programs used from it stays here.
"""

from components.spec.model import ClusterSpec
from components.spec.reader import NAMESPACE, SpecError
from components.spec.validation import build_spec

__all__ = ["NAMESPACE", "ClusterSpec", "SpecError", "build_spec"]
