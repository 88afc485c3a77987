"""How this program runs a script on a server: pulumi-command's remote.Command, one way.

pulumi-command (1.2.1) by default sends the previous run's output to the
server as PULUMI_COMMAND_STDOUT/STDERR (`addPreviousOutputInEnv`), which a
stock sshd refuses (no AcceptEnv), with a warning at every update and delete.
Every script here reads its inputs from its own text instead.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_command as command


def remote_command(name: str, connection: command.remote.ConnectionArgs, *,
                   opts: pulumi.ResourceOptions, **scripts: Any) -> command.remote.Command:
    """`scripts`: create=, update=, delete=, triggers= as remote.Command takes them."""
    return command.remote.Command(name, connection=connection, add_previous_output_in_env=False,
                                  opts=opts, **scripts)
