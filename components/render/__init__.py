"""Layer 1, pure: everything a host receives, as text, rendered from the ClusterSpec.

config.ini from the release's own template, systemd units, and the scripts the
remote commands and the rolling restart run (templates/*.j2), wrapped to run
as root; where each file lives on a host (host_layout). Imports only spec/;
no Pulumi, so the benchmark and the tests call it directly.
"""
