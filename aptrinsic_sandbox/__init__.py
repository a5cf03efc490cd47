"""A local Aptrinsic (Gainsight PX) REST API, faithful to the vendor contract, for tests and demos."""

from .data import DataConfig, Dataset
from .faults import Faults
from .server import API_KEY_HEADER, Sandbox, SandboxConfig, spawn

__all__ = ["API_KEY_HEADER", "DataConfig", "Dataset", "Faults", "Sandbox", "SandboxConfig", "spawn"]
