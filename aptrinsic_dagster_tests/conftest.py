from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator

import pytest

from aptrinsic_dagster.sandbox import DataConfig, Faults, Sandbox, SandboxConfig

API_KEY = "test-key-0123456789abcdef"
# A fixed calendar so windows and partitions in tests never depend on the day they run.
END_DATE = dt.date(2026, 3, 15)
DAY_MS = 86_400_000


def ms(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1000)


SandboxFactory = Callable[..., Sandbox]


@pytest.fixture
def make_sandbox() -> Iterator[SandboxFactory]:
    """Start sandboxes on ephemeral loopback ports: ``make_sandbox(users=..., faults=Faults(...))``."""
    started: list[Sandbox] = []

    def make(
        *,
        faults: Faults | None = None,
        api_keys: tuple[str, ...] = (API_KEY,),
        forbidden_keys: tuple[str, ...] = (),
        now_ms: int | None = None,
        **data: object,
    ) -> Sandbox:
        data.setdefault("end_date", END_DATE)
        config = SandboxConfig(
            data=DataConfig(**data),
            faults=faults or Faults(),
            api_keys=api_keys,
            forbidden_keys=forbidden_keys,
            now_ms=now_ms if now_ms is not None else ms(END_DATE),
        )
        sandbox = Sandbox(config).start()
        started.append(sandbox)
        return sandbox

    yield make
    for sandbox in started:
        sandbox.stop()


@pytest.fixture
def sandbox(make_sandbox: SandboxFactory) -> Sandbox:
    return make_sandbox()
