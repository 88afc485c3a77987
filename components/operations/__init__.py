"""Layer 3: what acts on a running cluster from where `pulumi up` runs.

Python dynamic providers: the rolling restart (with the ReplicaServers'
drain through Pegasus's admin shell), the health check at every up, the
ZooKeeper path guard and the fixed-settings check. Their state is pickled by
reference to these modules: keep them importable and free of side effects at
import, and add a line to components/legacy_paths.py when one moves. Imports
spec/, render/ and ssh/.
"""
