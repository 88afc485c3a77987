"""The stack's program with monitoring on, until the `monitoring` stack key is declared
(keys-ready): the same spec as __main__.py, with ClusterSpec.monitoring set."""

import dataclasses
import json
import os
from pathlib import Path

import pulumi

from components.resources.cluster import PegasusCluster
from components.spec import build_spec
from components.spec.monitoring import MonitoringSpec
from components.spec.stack_config import read_stack_config

values, secret_keys = read_stack_config()
spec = build_spec(values, stack=pulumi.get_stack(), secret_keys=secret_keys, project_dir=Path.cwd())
monitoring = MonitoringSpec(enabled=True, **json.loads(os.environ.get("PEGASUS_TEST_MONITORING", "{}")))
cluster = PegasusCluster(spec.cluster_name, dataclasses.replace(spec, monitoring=monitoring), adopt_old_names=True)
pulumi.export("monitoring", cluster.monitoring)
pulumi.export("replicaServers", cluster.replica_servers)
