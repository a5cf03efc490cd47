"""`dg dev` as `make dev` starts it, on a free port against a sandbox: the `dagster_dev` fixture
(registered in conftest.py) and the GraphQL helpers the tests that drive it share."""

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from aptrinsic_sandbox.dev import LAUNCH, STATUS, dev_env, gql, prepare_dagster_home, started_dg_dev
from aptrinsic_sandbox.postgres import free_port

from .conftest import Deployment

__all__ = ["ASSET_NODES", "LAUNCH", "STATUS", "Dev", "gql", "running_dg_dev"]

ASSET_NODES = "{ assetNodes { assetKey { path } dependencyKeys { path } } }"
# Loading the code locations takes ~30 s alone, several minutes on a 2-core machine shared by other test runs.
STARTUP_BOUND_S = 300


@dataclass
class Dev:
    url: str
    deployment: Deployment
    log: Path


@contextlib.contextmanager
def running_dg_dev(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`dg dev` as `make dev` starts it, with the test's environment: its URL once both code locations
    have loaded, and the file its output goes to."""
    home = prepare_dagster_home(tmp_path / "dagster_home")
    log = tmp_path / "dg_dev.log"
    with started_dg_dev(home, dev_env(home), log, free_port(), STARTUP_BOUND_S) as url:
        yield url, log


@pytest.fixture
def dagster_dev(deploy, tmp_path: Path) -> Iterator[Dev]:
    deployment = deploy(users=150, events_per_day=40)
    with running_dg_dev(tmp_path) as (url, log):
        yield Dev(url, deployment, log)
