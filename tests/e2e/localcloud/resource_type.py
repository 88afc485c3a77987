"""What the mock engine asks of each resource type (the part a provider plays)."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .mock_cloud import CloudMocks

# Outcomes of comparing a registration with the state.
SAME = "same"
UPDATE = "update"
REPLACE = "replace"  # create the new one now, delete the old one at the end of the run
REPLACE_DELETE_FIRST = "replace-delete-first"


def hex_id(prefix: str, digits: int = 17) -> str:
    """AWS-style id: `i-0123456789abcdef0`."""
    return f"{prefix}-{secrets.token_hex((digits + 1) // 2)[:digits]}"


class ResourceType:
    """Default behaviour: outputs are the inputs plus what create computed."""

    # Outputs a preview shows unknown for an update (the provider recomputes them):
    # pulumi-command 1.2.1's Command.Update in preview returns its inputs only.
    computed_on_update: tuple[str, ...] = ()

    def create(self, mocks: "CloudMocks", name: str, raw: dict, inputs: dict) -> tuple[str, dict]:
        raise NotImplementedError

    def check_new(self, mocks: "CloudMocks", inputs: dict) -> None:
        """The provider's Check of a resource a preview plans to create (unknowns as rpc.UNKNOWN);
        raise to fail the registration. (Existing ones are checked by `diff`, new ones at `create`.)"""

    def diff(self, mocks: "CloudMocks", old: dict, raw: dict, inputs: dict) -> str:
        return SAME if old["inputs"] == inputs else UPDATE

    def update(self, mocks: "CloudMocks", old: dict, raw: dict, inputs: dict) -> dict:
        """Apply a change in place; return the new extras (default: keep the old ones)."""
        return old["extras"]

    def delete(self, mocks: "CloudMocks", record: dict) -> None:
        pass

    def outputs(self, raw: dict, extras: dict) -> dict[str, Any]:
        return {**raw, **extras}

    def describe(self, inputs: dict) -> dict:
        """Details for the run log (e.g. which host a command ran on)."""
        return {}

    def planned(self, old: dict | None, raw: dict) -> dict:
        """What a preview shows of the step beyond its inputs (a dynamic provider's check adds some)."""
        return {}
