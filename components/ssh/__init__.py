"""Layer 2: the SSH transport from where `pulumi up` runs, with the system `ssh` client.

A session runs command lines on servers (the rolling restart, the health
check); a tunnel forwards local ports to private addresses (the ZooKeeper path
guard). Keys and ssh config live in private temporary directories. Imports
only spec/ and render/.
"""
