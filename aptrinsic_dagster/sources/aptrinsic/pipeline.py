"""The dlt pipeline the project loads with: one name end to end, DuckDB by default."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import sys
from pathlib import Path
from typing import Any

import dlt
import pyarrow as pa
from dlt.common.destination import Destination
from dlt.common.pipeline import LoadInfo
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials
from dlt.extract.source import DltSource

from ...arrow_memory import JEMALLOC_SET
from .merges import KeyByKeyDuckDb
from .settings import PREFERENCES

PIPELINE_NAME = "aptrinsic_pipeline"
DATASET_NAME = "aptrinsic_data"
DEFAULT_DUCKDB_PATH = "aptrinsic.duckdb"  # the project's one default (dlt refuses a path in config.toml)
DUCKDB_MEMORY_LIMIT = "56MB"
# DuckDB runs a thread per core by default, and each takes its own join and delete buffers from that
# limit: at 8 threads, as on an 8-core laptop, scenario 1's load (1M events) ran out of 56 MB where 2
# threads, on which every figure here was measured, load it.
DUCKDB_THREADS = 2


# Replaced (snapshot) tables load into a staging dataset and are swapped in one transaction, on
# every destination, so a reader never sees a half-written snapshot.
REPLACE_STRATEGY = "insert-from-staging"


# dlt stages merges (and replaced snapshots) in one dataset, "<dataset>_staging", shared by every
# load: two loads at once truncate and fill each other's staging tables, and merges then duplicate
# or drop rows (dlt #4297). A load that may run beside others gets a staging dataset of its own,
# named by ``staging_suffix`` (the Dagster run id), and drops it when done (resources.py).
STAGING_PREFIX = f"{DATASET_NAME}_staging_"


def staging_layout(staging_suffix: str | None) -> str:
    """dlt's ``staging_dataset_name_layout``: ``%s`` is the dataset name. A run id without its dashes
    keeps the name at 55 characters, under Postgres' 63."""
    return "%s_staging" if staging_suffix is None else "%s_staging_" + staging_suffix.replace("-", "")


def warehouse_destination(
    name: str = "duckdb", duckdb_path: str | Path | None = None, staging_suffix: str | None = None
) -> Destination:
    """The destination ``name`` (credentials from dlt config); for DuckDB, the file at ``duckdb_path``.
    ``staging_suffix``: a staging dataset of the load's own (see STAGING_PREFIX)."""
    options = {"replace_strategy": REPLACE_STRATEGY, "staging_dataset_name_layout": staging_layout(staging_suffix)}
    if name == "postgres":
        from .merge_lock import LockingPostgres  # imports the Postgres driver: only when loading there

        return LockingPostgres(destination_name="postgres", **options)
    if name != "duckdb":
        return Destination.from_reference(name, **options)
    path = duckdb_path or DEFAULT_DUCKDB_PATH
    # DuckDB's buffer manager takes up to 80% of RAM by default: merging a million events then
    # grew the process to 1.4 GB. Bounded, it spills to disk instead, at the same speed (benchmarks/).
    # It is the peak of a run's load phase: 56 MB against 80 MB is ~20 MB less of it. dlt's
    # ROW_NUMBER() dedup ran out of memory at 56 MB on a 365-day backfill of ~300k events in one table;
    # the anti-join that replaces it (merges.py) merges 4.0M staged rows of ~300 bytes into an empty
    # table at 56 MB. A load's SQL jobs raise the buffer to what its staged rows need (merges.py).
    settings = {"memory_limit": DUCKDB_MEMORY_LIMIT, "threads": DUCKDB_THREADS}
    credentials = DuckDbCredentials(str(path), global_config=settings)
    return KeyByKeyDuckDb(credentials, destination_name="duckdb", **options)


def make_pipeline(
    destination: Destination | str | None = None,
    pipelines_dir: str | None = None,
    dataset_name: str = DATASET_NAME,
    **kwargs: Any,
) -> dlt.Pipeline:
    return dlt.pipeline(
        PIPELINE_NAME,
        destination=destination or warehouse_destination(),
        dataset_name=dataset_name,
        pipelines_dir=pipelines_dir,
        **kwargs,
    )


def load(pipeline: dlt.Pipeline, source: DltSource) -> list[LoadInfo]:
    """Load every selected table; ``user_preferences`` after ``users``, since it reads the loaded users."""
    selected = list(source.selected_resources)
    first = [name for name in selected if name != PREFERENCES.name]
    infos = []
    if first:
        infos.append(pipeline.run(source.with_resources(*first)))
    if PREFERENCES.name in selected:
        infos.append(pipeline.run(source.with_resources(PREFERENCES.name)))
    for info in infos:
        info.raise_on_failed_jobs()
    return infos


class _JsonHintNotice(logging.Filter):
    """JSON columns travel as Arrow text and the JSON hint wins, as intended: dlt warns on every page."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "dlt schema hints were kept" not in record.getMessage()


_JSON_HINT_NOTICE = _JsonHintNotice()


class _PandasUnavailable:
    """An import hook under which ``import pandas`` fails, as if pandas were not installed."""

    def find_spec(self, name: str, path: object, target: object = None) -> None:
        if name == "pandas":
            raise ImportError("pandas is left unloaded by this process")


def _answer_pyarrows_pandas_probe() -> None:
    if "pandas" in sys.modules:
        return
    hook = _PandasUnavailable()
    sys.meta_path.insert(0, hook)
    try:
        pa.array([])  # pyarrow's one probe: it finds no pandas and remembers
    finally:
        sys.meta_path.remove(hook)


def tune_process() -> None:
    """Process-wide settings for a load; called by the entry points that own the process.

    - glibc gives each busy thread a malloc arena of its own, and pages freed in one linger. With a
      dozen extract threads that alone kept ~90 MB of a 1M-event load's peak RSS (benchmarks/:
      590 -> 496 MB, same speed). Two arenas; applies to arenas created from now on; a no-op where
      the C library is not glibc.
    - glibc serves a block above the mmap threshold by mmap and returns it on free, but raises the
      threshold to the size of each such block freed, up to 32 MB: after the first pages, page
      bodies and Arrow buffers land in the heap between longer-lived blocks and are never returned.
      A fixed 128 KB threshold (glibc's initial one) keeps them out (benchmarks/memory.py, run side by
      side: 492 -> 470 MB at scale 1.0, 409 -> 405 MB at 0.25, same wall time).
    - Arrow allocates from its bundled jemalloc, set up before pyarrow loaded (``arrow_memory.py``,
      which also makes it Arrow's own default on x86-64 Linux), or through glibc's malloc, under the
      arena limit above, where pyarrow loaded first.
    - pyarrow's first conversion of a Python list (``Table.from_pylist``, ``pa.array``) checks whether
      the list is a pandas object, and imports pandas to find out: 52 MB of RSS that no load uses
      (benchmarks/memory.py at scale 1.0, run side by side: 443 -> 409-420 MB). The probe is answered
      here with pandas unavailable, and pyarrow remembers that answer; its explicit pandas calls
      (``to_pandas``) still import pandas, and so can any other library.
    - dlt's notice that JSON hints won over Arrow text types, once per page, is silenced.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None)
        libc.mallopt(-8, 2)  # M_ARENA_MAX = 2
        libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool() if JEMALLOC_SET else pa.system_memory_pool())
    except NotImplementedError:  # a pyarrow built without jemalloc
        pa.set_memory_pool(pa.system_memory_pool())
    _answer_pyarrows_pandas_probe()
    logging.getLogger("dlt").addFilter(_JSON_HINT_NOTICE)  # a set: adding twice keeps one
