"""Changes at the source after a load: events that arrive late and users erased at the source.

They are knobs on ``Faults`` (CLI flags, fixture arguments, ``POST /_sandbox/faults``), but not faults:
every answer stays valid, and ``/_sandbox/count`` counts what the API holds now.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class SourceChanges:
    deleted_users: frozenset[str]
    late_days: frozenset[str]  # UTC days, YYYY-MM-DD, whose late events are not visible yet
    late_fraction: float

    def keeps(self, record: dict) -> bool:
        """Whether the API serves this event now."""
        if record.get("identifyId") in self.deleted_users:
            return False
        if self.late_days and dt.datetime.fromtimestamp(record["date"] / 1000, dt.UTC).date().isoformat() in (
            self.late_days
        ):
            # The same events of a day are late every time: chosen by the event id, not by chance.
            return int(record["eventId"][:8], 16) >= self.late_fraction * 0x1_0000_0000
        return True
