"""A dynamic provider for a check that runs at every `pulumi up`.

Its resource's `run` input is new at each up (a uuid), so the check is one line of every
preview and runs whether anything changed or not: the cluster's health, the servers'
host keys. A subclass says what a run does (`_outputs`) and the id its resource takes.
"""

from __future__ import annotations

import pulumi
import pulumi.dynamic


class EveryUpProvider(pulumi.dynamic.ResourceProvider):
    resource_id = ""

    def _outputs(self, props: dict) -> dict:
        raise NotImplementedError

    def create(self, props: dict) -> pulumi.dynamic.CreateResult:
        return pulumi.dynamic.CreateResult(self.resource_id, self._outputs(props))

    def diff(self, _id: str, olds: dict, news: dict) -> pulumi.dynamic.DiffResult:
        return pulumi.dynamic.DiffResult(changes=olds.get("run") != news.get("run"), replaces=[],
                                         delete_before_replace=False)

    def update(self, _id: str, _olds: dict, news: dict) -> pulumi.dynamic.UpdateResult:
        return pulumi.dynamic.UpdateResult(self._outputs(news))

    def delete(self, _id: str, _props: dict) -> None:
        return None
