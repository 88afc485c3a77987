"""pulumi-python:dynamic:Resource: the serialized provider, called as the SDK's host does.

Like pulumi/dynamic/__main__.py: the `__provider` input is base64 of a dill
pickle; check(olds, news) validates (at preview too, a new resource's unknown
inputs as rpc.UNKNOWN), create(props) -> (id, outs), diff(id, old
outputs, news) decides (changes=None: the engine compares old and new inputs,
ignoring `__provider`), update(id, old outputs, news), delete(id, outputs).
The outputs are the provider's outs plus `__provider`.
"""

from __future__ import annotations

import base64
import threading

import dill

from .resource_type import REPLACE, REPLACE_DELETE_FIRST, SAME, UPDATE, ResourceType
from .values import normalize, without

PROVIDER_KEY = "__provider"
_CACHE: dict[str, object] = {}
_LOCK = threading.Lock()


def load_provider(serialized: str):
    with _LOCK:
        provider = _CACHE.get(serialized)
        if provider is None:
            provider = dill.loads(base64.b64decode(serialized))
            _CACHE[serialized] = provider
        return provider


class DynamicResource(ResourceType):
    def _checked(self, provider, olds: dict, news: dict) -> dict:
        result = provider.check(olds, news)
        if result.failures:
            reasons = "; ".join(f"{f.property}: {f.reason}" for f in result.failures)
            raise ValueError(f"dynamic provider check failed: {reasons}")
        inputs = dict(result.inputs)
        inputs[PROVIDER_KEY] = news[PROVIDER_KEY]
        return inputs

    def check_new(self, mocks, inputs):
        self._checked(load_provider(inputs[PROVIDER_KEY]), {}, inputs)

    def create(self, mocks, name, raw, inputs):
        provider = load_provider(raw[PROVIDER_KEY])
        props = self._checked(provider, {}, raw)
        result = provider.create(props)
        outs = dict(result.outs or {})
        outs[PROVIDER_KEY] = raw[PROVIDER_KEY]
        return str(result.id), normalize(outs)

    def diff(self, mocks, old, raw, inputs):
        provider = load_provider(raw[PROVIDER_KEY])
        news = self._checked(provider, old["inputs"], raw)
        result = provider.diff(old["id"], old["extras"], news)
        if result.changes is None:  # the engine's own comparison of inputs
            changed = without(old["inputs"], PROVIDER_KEY) != without(inputs, PROVIDER_KEY)
            return UPDATE if changed else SAME
        if not result.changes:
            return SAME
        if result.replaces:
            return REPLACE_DELETE_FIRST if result.delete_before_replace else REPLACE
        return UPDATE

    def update(self, mocks, old, raw, inputs):
        provider = load_provider(raw[PROVIDER_KEY])
        news = self._checked(provider, old["inputs"], raw)
        result = provider.update(old["id"], old["extras"], news)
        outs = dict(result.outs or {})
        outs[PROVIDER_KEY] = raw[PROVIDER_KEY]
        return normalize(outs)

    def delete(self, mocks, record):
        provider = load_provider(record["extras"].get(PROVIDER_KEY) or record["inputs"][PROVIDER_KEY])
        provider.delete(record["id"], record["extras"])

    def outputs(self, raw, extras):
        return dict(extras)

    def planned(self, old, raw):
        """The inputs the provider's check adds (the engine diffs and shows checked inputs)."""
        provider = load_provider(raw[PROVIDER_KEY])
        checked = self._checked(provider, old["inputs"] if old else {}, raw)
        return {k: v for k, v in checked.items() if k not in raw}
