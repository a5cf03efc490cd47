from . import arrow_memory  # noqa: F401 - first: it sets Arrow's allocator before anything imports pyarrow
