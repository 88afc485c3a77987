"""The local engine for end-to-end tests: a Pulumi mock engine that drives the real
program on the local cloud's machines (tools/localcloud), and the AWS resources
it plays there (engine.py)."""

from .engine import DeploymentError, Engine
from .mock_cloud import CloudMocks, Operation, RunLog

__all__ = ["CloudMocks", "DeploymentError", "Engine", "Operation", "RunLog"]
