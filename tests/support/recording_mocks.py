"""Mocks that record every registration: for tests of one resource's inputs (secrets, types)."""

from __future__ import annotations

import pulumi


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.registered: list[pulumi.runtime.MockResourceArgs] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.registered.append(args)
        return "id-1", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}
