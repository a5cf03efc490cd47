"""Arrow's allocator, set up before pyarrow loads.

Arrow allocates from the jemalloc it bundles, which reads its settings once, as pyarrow loads: so
they are set when this package is imported (Dagster's code servers, run workers and the plain dlt
script import it before anything imports pyarrow), and kept where the environment already holds
some. One arena, no per-thread caches, freed pages returned at once: Arrow's buffers then stay out
of glibc's heap, where, freed in batches between Python's objects, they grew the heap through the
whole event extract (scale 2.0: 417 / 434 MB peak against 407 / 410 this way, benchmarks/memory.py),
and jemalloc's defaults (an arena per core, a cache per thread, freed pages kept a second) held
~40 MB more than glibc. Where pyarrow loaded first, the settings were not read, and ``tune_process``
allocates through glibc's malloc instead.

Arrow's own default pool, which its C++ code takes when Python passes none, is set to that jemalloc
too: ``pa.set_memory_pool`` sets only the pool pyarrow hands down from Python, and Arrow's default
stayed its bundled mimalloc, a second allocator that ``pa.total_allocated_bytes`` does not count. Its
1 GiB reservation held 9 MB resident at the event extract's peak at scale 0.25 and 20 MB at 1.0
(``/proc/self/smaps``, plain dlt); without it the run's peak at 1.0 is 358-360 MB against 384
(benchmarks/memory.py, side by side).
"""

from __future__ import annotations

import os
import sys

SETTINGS = "narenas:1,tcache:false,dirty_decay_ms:0,muzzy_decay_ms:0"

JEMALLOC_SET = "pyarrow" not in sys.modules
if JEMALLOC_SET:
    os.environ.setdefault("JE_ARROW_MALLOC_CONF", SETTINGS)
    # pyarrow's x86-64 Linux wheels bundle jemalloc; its macOS and ARM ones do not, and there Arrow
    # would warn of the name and keep its default.
    if sys.platform == "linux" and os.uname().machine == "x86_64":
        os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")
