"""Two Pegasus clusters in one program, as a user's own program would hold them.

The first is the stack's cluster, read from `pegasus:*` and built as
__main__.py builds it (it adopts the names of stacks deployed before names
carried the cluster's). The second takes the same keys with the JSON object
`second:overrides` laid over them, is named `second:name` (its clusterName
when unset), and adopts nothing.
"""

from pathlib import Path

import pulumi

from components.resources.cluster import PegasusCluster
from components.spec.validation import build_spec
from components.spec.stack_config import read_stack_config

PROJECT_DIR = Path(__file__).resolve().parents[4]

values, secret_keys = read_stack_config()
stack = pulumi.get_stack()
first = build_spec(values, stack=stack, secret_keys=secret_keys, project_dir=PROJECT_DIR)
second = build_spec({**values, **pulumi.Config("second").require_object("overrides")}, stack=stack,
                    secret_keys=secret_keys, project_dir=PROJECT_DIR)
PegasusCluster(first.cluster_name, first, adopt_old_names=True)
PegasusCluster(pulumi.Config("second").get("name") or second.cluster_name, second)
