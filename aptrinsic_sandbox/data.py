"""Deterministic Aptrinsic data, generated lazily from a seed.

Nothing is stored: record ``i`` of a collection is a pure function of ``(seed, collection, i)``,
so a million events cost no memory and any page can be produced in O(page size). Field choices
come from one 64-bit hash per record, sliced into bits, which is several times cheaper than
seeding a ``random.Random`` per record.

Shapes follow the definitions of the vendor's Swagger contract (User, Account, the *Event
definitions, Engagement, Feature, ...), including what the real API is known to return:
empty strings instead of nulls, ``lastSeenDate: 0``, ``customAttributes: null``, keys of
``customAttributes`` that vary between records, and non-ASCII names.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import orjson

DAY_MS = 86_400_000
_MASK = (1 << 64) - 1


def _splitmix(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def _tag(name: str) -> int:
    return zlib.crc32(name.encode())


def _uuid(h: int, g: int) -> str:
    x = f"{h:016x}{g:016x}"
    return f"{x[:8]}-{x[8:12]}-4{x[13:16]}-a{x[17:20]}-{x[20:32]}"


FIRST_NAMES = [
    "Ana",
    "José",
    "Zoë",
    "Łukasz",
    "Søren",
    "Ângela",
    "Mia",
    "Noah",
    "Chloé",
    "Émile",
    "Yuki",
    "Björn",
    "Ines",
    "Omar",
    "李",
    "Ольга",
    "Liam",
    "Priya",
    "Jürgen",
    "Ava",
]
LAST_NAMES = [
    "García",
    "Müller",
    "Nowak",
    "O'Brien",
    "Smith",
    "Østergaard",
    "Dubois",
    "Rossi",
    "Tanaka",
    "Kowalski",
    "王",
    "Иванова",
    "Brown",
    "Núñez",
    "Larsen",
    "Patel",
]
CITIES = [
    ("United States", "US", "California", "CA", "San Francisco", "North America", "America/Los_Angeles"),
    ("Germany", "DE", "Bayern", "BY", "München", "Europe", "Europe/Berlin"),
    ("France", "FR", "Île-de-France", "IDF", "Paris", "Europe", "Europe/Paris"),
    ("Japan", "JP", "Tokyo", "13", "東京", "Asia", "Asia/Tokyo"),
    ("Brazil", "BR", "São Paulo", "SP", "São Paulo", "South America", "America/Sao_Paulo"),
    ("", "", "", "", "", "", ""),
]
INDUSTRIES = ["Software", "Finance", "Healthcare", "Retail", "Education", ""]
PLANS = ["free", "starter", "growth", "enterprise"]
USER_TYPES = ["USER", "USER", "USER", "USER", "LEAD", "VISITOR", "EMPTY_USER_TYPE", "USER"]
GENDERS = ["MALE", "FEMALE", "OTHER", "EMPTY_GENDER"]
PROPERTY_KEYS = ["AP-XXXXXXXXXX-2", "AP-YYYYYYYYYY-2"]
PATHS = ["/", "/dashboard", "/reports/weekly", "/settings/profile", "/billing", "/search", "/help/faq"]
TITLES = ["Home", "Dashboard", "Weekly report", "Profile – settings", "Billing", "Search", "FAQ · Help"]
EVENT_NAMES = ["export_clicked", "report_shared", "invite_sent", "filter_applied", "file_uploaded"]
EMAIL_TRACK_TYPES = [
    "EMAIL_TRACK_DELIVERED",
    "EMAIL_TRACK_OPEN",
    "EMAIL_TRACK_CLICK",
    "EMAIL_TRACK_PROCESSED",
    "EMAIL_TRACK_BOUNCE",
    "EMAIL_TRACK_DEFERRED",
    "EMAIL_TRACK_DROPPED",
    "EMAIL_TRACK_UNSUBSCRIBE",
]
BOUNCE_TYPES = ["EMPTY_BOUNCE_TYPE", "DELIVER_BOUNCE", "DELIVER_BLOCKED", "DELIVER_EXIPERED"]
LINK_TYPES = ["EMPTY_LINK_TYPE", "HTML_LINK_TYPE", "HEADER_LINK_TYPE", "TEXT_LINK_TYPE"]
VIEW_CONTENT_TYPES = ["IN_APP_DIALOG", "IN_APP_GUIDE", "IN_APP_CAROUSEL"]
SURVEY_CONTENT_TYPES = [
    "IN_APP_SURVEY_NPS",
    "IN_APP_SURVEY_CES",
    "IN_APP_SURVEY_BOOLEAN",
    "IN_APP_SURVEY_RATING",
]
ENGAGEMENT_TYPES = [
    "IN_APP_DIALOG",
    "IN_APP_GUIDE",
    "IN_APP_CAROUSEL",
    "OUT_BOUND_EMAIL",
    "IN_APP_NPS_SURVEY",
    "IN_APP_CES_SURVEY",
    "IN_APP_RATING_SURVEY",
    "IN_APP_BOOLEAN_SURVEY",
    "IN_APP_NOTIFICATION",
    "IN_APP_MULTIPLE_QUESTION_SURVEY",
]
ENGAGEMENT_STATES = ["IN_PROGRESS", "STARTED", "PAUSED", "FAILED", "EDITING", "COMPLETED"]
BROWSERS = [("Chrome", "131.0"), ("Firefox", "133.0"), ("Safari", "18.1"), ("Edge", "131.0")]

# The event collections: sandbox name -> (record key is decided by the endpoint table, not here).
EVENT_TYPES = (
    "custom",
    "pageView",
    "session",
    "identify",
    "feature_match",
    "segment_match",
    "engagementView",
    "email",
    "lead",
    "formSubmit",
    "survey",
)


@dataclass(frozen=True)
class DataConfig:
    """Scale and shape knobs. Event days are ``[end_date - days, end_date)`` (UTC)."""

    seed: int = 1
    users: int = 200
    accounts: int = 40
    events_per_day: int = 30
    days: int = 14
    end_date: dt.date | None = None
    features: int = 30
    segments: int = 12
    engagements: int = 24
    articles: int = 15
    kcbots: int = 4
    # Events per day of one type = events_per_day x its weight (default 1): a skewed mix.
    event_weights: dict[str, float] = field(default_factory=dict)
    # Schema-drift knobs: a customAttributes key no earlier record had, and a number turned string.
    extra_custom_attribute: str | None = None
    seats_as_string: bool = False

    def resolved_end_date(self) -> dt.date:
        return self.end_date or dt.datetime.now(dt.UTC).date()


class _Offsets(Sequence[int]):
    """Millisecond offsets of a day's events, strictly increasing, computed on demand.

    Event ``i`` of ``n`` falls in slot ``[i*s, (i+1)*s)`` with ``s = DAY_MS // n``, so offsets are
    sorted without sorting and a window count is a bisection.
    """

    def __init__(self, day_seed: int, day: int, n: int) -> None:
        self._day_seed, self._n = day_seed, n
        self._slot = DAY_MS // n if n else DAY_MS
        # Every third day's first event sits exactly on 00:00:00.000 UTC: the boundary case.
        self._midnight = day % 3 == 0

    def __len__(self) -> int:
        return self._n

    def offset(self, i: int, h: int) -> int:
        return 0 if i == 0 and self._midnight else i * self._slot + h % self._slot

    def __getitem__(self, i):  # type: ignore[override]  # bisect only asks for single items
        return self.offset(i, self.hash(i))

    def hash(self, i: int) -> int:
        """Event ``i``'s hash, which every field of it derives from."""
        return _splitmix(self._day_seed ^ i)

    def started_by(self, offset: int) -> int:
        """How many of the day's events fall at or before ``offset``: one look, as each has its slot."""
        k = min(offset // self._slot, self._n)
        return k + 1 if k < self._n and self[k] <= offset else k


@dataclass
class Dataset:
    config: DataConfig
    end_ms: int = field(init=False)
    start_ms: int = field(init=False)

    def __post_init__(self) -> None:
        end = self.config.resolved_end_date()
        self.end_ms = int(dt.datetime(end.year, end.month, end.day, tzinfo=dt.UTC).timestamp() * 1000)
        self.start_ms = self.end_ms - self.config.days * DAY_MS
        self._seed = _splitmix(self.config.seed)
        self._no_account_seed = self.h(_tag("user-account"))
        self._tail_cache: dict[str, list[bytes]] = {}
        self._surveys = [i for i in range(self.config.engagements) if "SURVEY" in self.engagement_type(i)]

    # -- hashing ---------------------------------------------------------------------------
    def h(self, tag: int, *parts: int) -> int:
        x = self._seed ^ tag
        for p in parts:
            x = _splitmix(x ^ p)
        return _splitmix(x)

    # -- events ----------------------------------------------------------------------------
    def day_count(self, event_type: str, day: int) -> int:
        """Events of one type on day index ``day`` (0 = first data day): 75%..125% of the knob."""
        if not 0 <= day < self.config.days:
            return 0
        base = self.config.events_per_day * self.config.event_weights.get(event_type, 1.0)
        frac = self.h(_tag("count:" + event_type), day) % 1001 / 1000
        return int(base * (0.75 + 0.5 * frac))

    def offsets(self, event_type: str, day: int) -> _Offsets:
        return _Offsets(self.h(_tag("event:" + event_type), day), day, self.day_count(event_type, day))

    def day_index(self, ms: int) -> int:
        return (ms - self.start_ms) // DAY_MS

    def event_segments(self, event_type: str, start_ms: int, end_ms: int) -> list[tuple[int, int, int]]:
        """``(day, first_index, end_index)`` runs of the events with ``start_ms <= date < end_ms``."""
        segments = []
        first = max(0, self.day_index(start_ms))
        last = min(self.config.days - 1, self.day_index(end_ms - 1))
        for day in range(first, last + 1):
            offsets = self.offsets(event_type, day)
            day_ms = self.start_ms + day * DAY_MS
            lo = bisect.bisect_left(offsets, start_ms - day_ms) if start_ms > day_ms else 0
            hi = bisect.bisect_left(offsets, end_ms - day_ms) if end_ms < day_ms + DAY_MS else len(offsets)
            if hi > lo:
                segments.append((day, lo, hi))
        return segments

    def count_events(self, event_type: str, start_ms: int, end_ms: int) -> int:
        return sum(hi - lo for _, lo, hi in self.event_segments(event_type, start_ms, end_ms))

    def event_bytes(self, event_type: str, day: int, indices: range) -> list[bytes]:
        """Events ``indices`` of one type and day, as serialized JSON objects.

        Serving speed matters (the sandbox must not be what a benchmark measures), so a record is
        its own head (ids, user, date: unique per record, from one hash) joined to one of
        ``_VARIANTS`` pre-serialized tails built by the type's builder (everything else).
        """
        offsets = self.offsets(event_type, day)
        day_seed, day_ms = offsets._day_seed, self.start_ms + day * DAY_MS
        tails, refs, users = self._tails(event_type), self.user_refs, self.config.users or 1
        session, view, email = (
            event_type != "email",
            event_type in _VIEW_TYPES,
            event_type in ("identify", "email"),
        )
        # An event with a session happens inside one of the day's sessions, one started by then (or
        # the day's first): its user and sessionId are that session's, as in the product. Drawn
        # apart, a day's feature users were mostly not among its active users.
        sessions = self.offsets("session", day) if session and event_type != "session" else None
        out = []
        for i in indices:
            h = _splitmix(day_seed ^ i)
            g = _splitmix(h)
            offset = offsets.offset(i, h)
            sh, sg = h, g
            if sessions:
                started = sessions.started_by(offset) or 1
                sh = sessions.hash((g >> 20) % started)
                sg = _splitmix(sh)
            user = sh % users
            identify_id, account_id = refs[user] if refs else ("", "")
            date = day_ms + offset
            head = f'{{"eventId":"{_uuid(h, g)}","identifyId":"{identify_id}","date":{date}'
            if session:
                head += f',"sessionId":"{identify_id}-s{(sg >> 8) % 50}","accountId":"{account_id}"'
            if view:
                head += f',"executionDate":{date - date % 60_000},"viewEventId":"{_uuid(g, h)}"'
            if email:
                head += f',"email":"user{user}@example.com"'
            out.append(head.encode() + tails[g % _VARIANTS])
        return out

    def _tails(self, event_type: str) -> list[bytes]:
        tails = self._tail_cache.get(event_type)
        if tails is None:
            seed, build = self.h(_tag("tail:" + event_type)), _EVENT_BUILDERS[event_type]
            tails = []
            for v in range(_VARIANTS):
                h = _splitmix(seed ^ v)
                record = build(self, h, _splitmix(h), 0)
                for key in (*_HEAD_KEYS, "email") if event_type in ("identify", "email") else _HEAD_KEYS:
                    record.pop(key, None)
                tails.append(b"," + orjson.dumps(record)[1:])
            self._tail_cache[event_type] = tails
        return tails

    # -- entities --------------------------------------------------------------------------
    @functools.cached_property
    def user_refs(self) -> list[tuple[str, str]]:
        """``(identifyId, accountId)`` of every user: events point at them, so build them once."""
        return [(self.user_id(i), self.account_of_user(i)) for i in range(self.config.users)]

    def user_id(self, i: int) -> str:
        return f"user-{i:07d}"

    def account_id(self, i: int) -> str:
        return f"acc-{i:06d}"

    def account_of_user(self, i: int) -> str:
        # ~1 in 20 users belongs to no account; the API answers "" for it, not null.
        if not self.config.accounts or _splitmix(self._no_account_seed ^ i) % 20 == 0:
            return ""
        return self.account_id(i % self.config.accounts)

    def _ms_in_range(self, h: int) -> int:
        span = self.end_ms - self.start_ms
        return self.start_ms + h % span if span else self.start_ms

    def _location(self, h: int) -> dict | None:
        c = CITIES[h % len(CITIES)]
        if h % 17 == 0:
            return None
        return {
            "countryName": c[0],
            "countryCode": c[1],
            "stateName": c[2],
            "stateCode": c[3],
            "city": c[4],
            "street": "",
            "postalCode": "" if not c[0] else f"{h % 90000 + 10000}",
            "continent": c[5],
            "regionName": c[2],
            "timeZone": c[6],
            "coordinates": {
                "latitude": round((h >> 8) % 18000 / 100 - 90, 4),
                "longitude": round((h >> 24) % 36000 / 100 - 180, 4),
            },
        }

    def _custom_attributes(self, h: int, seats_as_string: bool) -> dict | None:
        if h % 11 == 0:
            return None
        attrs: dict = {}
        if h & 2:
            attrs["plan"] = PLANS[(h >> 3) % len(PLANS)]
        if h & 4:
            seats = (h >> 6) % 500
            attrs["seats"] = f"{seats} seats" if seats_as_string else seats
        if h & 8:
            attrs["betaOptIn"] = bool(h & 16)
        if h & 32:
            attrs["signupSource"] = ["web", "mobile", "partner", "événement"][(h >> 12) % 4]
        if h & 64:
            attrs["npsLastScore"] = round((h >> 20) % 110 / 10, 1)
        if self.config.extra_custom_attribute:
            attrs[self.config.extra_custom_attribute] = f"v{(h >> 30) % 7}"
        return attrs

    def user(self, i: int) -> dict:
        h = self.h(_tag("user"), i)
        g = self.h(_tag("user2"), i)
        first = FIRST_NAMES[h % len(FIRST_NAMES)]
        last = LAST_NAMES[(h >> 5) % len(LAST_NAMES)]
        created = self._ms_in_range(g) - 90 * DAY_MS
        never_seen = h % 13 == 0
        browser, version = BROWSERS[(g >> 7) % len(BROWSERS)]
        return {
            "aptrinsicId": _uuid(h, g),
            "identifyId": self.user_id(i),
            "id": self.user_id(i),
            "type": USER_TYPES[(h >> 9) % len(USER_TYPES)],
            "gender": GENDERS[(h >> 12) % len(GENDERS)],
            "email": f"user{i}@example.com",
            "firstName": first,
            "lastName": last,
            "lastSeenDate": 0 if never_seen else self._ms_in_range(h >> 3),
            "signUpDate": created,
            "firstVisitDate": created + (g >> 40) % DAY_MS,
            "title": ["", "Engineer", "Product Manager", "Directrice"][(h >> 14) % 4],
            "phone": "",
            "score": (h >> 16) % 100,
            "role": ["", "admin", "member"][(h >> 18) % 3],
            "subscriptionId": "",
            "accountId": self.account_of_user(i),
            "numberOfVisits": 0 if never_seen else (h >> 20) % 400,
            "location": self._location(g >> 3),
            "propertyKeys": PROPERTY_KEYS[: 1 + (h >> 23) % 2],
            "createDate": created,
            "lastModifiedDate": created + (h >> 24) % (60 * DAY_MS),
            "customAttributes": self._custom_attributes(g, self.config.seats_as_string),
            "globalUnsubscribe": bool(h >> 50 & 1),
            "sfdcContactId": "" if h >> 51 & 1 else f"003{i:012d}",
            "channelMetricList": []
            if never_seen
            else [
                {
                    "groupId": _uuid(g, h)[:8],
                    "channel": (g >> 9) % 3,
                    "environment": 1,
                    "firstSeenDate": created,
                    "lastSeenDate": self._ms_in_range(h >> 3),
                }
            ],
            "lastVisitedUserAgentData": None
            if never_seen
            else [
                {
                    "propertyKey": PROPERTY_KEYS[0],
                    "userAgent": {
                        "rawUserAgent": f"Mozilla/5.0 {browser}/{version}",
                        "device": "Desktop",
                        "platformType": "Windows",
                        "platformVersion": "10",
                        "browserType": browser,
                        "browserVersion": version,
                    },
                }
            ],
            "lastInferredLocation": self._location(h >> 7),
            "globalId": None,
        }

    def account(self, i: int) -> dict:
        h = self.h(_tag("account"), i)
        g = self.h(_tag("account2"), i)
        created = self._ms_in_range(g) - 365 * DAY_MS
        return {
            "id": self.account_id(i),
            "name": f"{LAST_NAMES[h % len(LAST_NAMES)]} & Co {i}",
            "trackedSubscriptionId": "",
            "sfdcId": "" if h & 1 else f"001{i:012d}",
            "lastSeenDate": self._ms_in_range(h >> 2),
            "dunsNumber": "",
            "industry": INDUSTRIES[(h >> 4) % 6],
            "numberOfEmployees": (h >> 8) % 5000,
            "sicCode": str(7372 + (h >> 20) % 3),
            "website": f"https://acc{i}.example.com",
            "naicsCode": "",
            "plan": PLANS[(h >> 24) % len(PLANS)],
            "location": self._location(g),
            "numberOfUsers": (h >> 28) % 300,
            "propertyKeys": [PROPERTY_KEYS[0]],
            "createDate": created,
            "lastModifiedDate": created + (g >> 30) % (300 * DAY_MS),
            "customAttributes": self._custom_attributes(g >> 5, self.config.seats_as_string),
            "parentGroupId": "",
            "renewalDate": created + 365 * DAY_MS,
            "healthScore": (h >> 36) % 101,
            "gsId": "",
            "nps": round((h >> 44) % 200 / 10 - 10, 1) if h & 4 else None,
            "csm": ["", "Renée Dupont", "Kenji Sato"][(h >> 50) % 3],
        }

    def feature_id(self, i: int) -> str:
        return f"feat-{i:04d}"

    def segment_id(self, i: int) -> str:
        return f"seg-{i:04d}"

    def engagement_id(self, i: int) -> str:
        return f"eng-{i:04d}"

    def engagement_type(self, i: int) -> str:
        return ENGAGEMENT_TYPES[i % len(ENGAGEMENT_TYPES)]

    def survey_engagements(self) -> list[int]:
        return self._surveys

    def feature(self, i: int) -> dict:
        h = self.h(_tag("feature"), i)
        module = i % 5 == 0
        return {
            "id": self.feature_id(i),
            "name": f"Feature {i} – {PATHS[h % len(PATHS)]}",
            "type": "MODULE" if module else "FEATURE",
            "parentFeatureId": None if module else self.feature_id(i - i % 5),
            "propertyKey": PROPERTY_KEYS[0],
            "status": "DELETED" if h % 9 == 0 else "ACTIVATED",
            "featureLabels": [
                {"id": f"lbl-{h % 4}", "name": ["core", "beta", "paid", "légacy"][h % 4], "color": "#33aaff"}
            ]
            if h & 2
            else [],
        }

    def segment(self, i: int) -> dict:
        return {"id": self.segment_id(i), "name": f"Segment {i}{' ✓' if i % 4 == 0 else ''}"}

    def engagement(self, i: int) -> dict:
        h = self.h(_tag("engagement"), i)
        return {
            "id": self.engagement_id(i),
            "name": f"Engagement {i}",
            "description": "" if h & 1 else "Onboarding",
            "type": self.engagement_type(i),
            "state": ENGAGEMENT_STATES[(h >> 2) % 6],
            "propertyKeys": [PROPERTY_KEYS[0]],
            "envs": ["Production"] if h & 8 else ["Production", "Staging"],
            "defaultLanguage": "en",
            "languages": [
                {"languageCode": "en", "translated": True},
                {"languageCode": "fr", "translated": bool(h & 16)},
            ],
            "translationState": "TRANSLATED" if h & 16 else "PARTIALLY_TRANSLATED",
        }

    def article(self, i: int) -> dict:
        h = self.h(_tag("article"), i)
        created = self._ms_in_range(h) - 30 * DAY_MS
        release = dt.datetime.fromtimestamp((created + DAY_MS) / 1000, dt.UTC)
        return {
            "id": f"art-{i:04d}",
            "articleName": f"How to use feature {i}",
            "author": FIRST_NAMES[h % 20],
            "articleKCs": [{"kcId": f"kc-{i % max(1, self.config.kcbots):03d}", "kcName": "Help center"}],
            "createdDate": created,
            "modifiedDate": created + (h >> 8) % DAY_MS,
            "modifiedBy": {"id": f"admin-{h % 3}", "name": ["Ana", "José", "Zoë"][h % 3]},
            "productId": "prod-1",
            "productName": "Main app",
            "releaseDate": release.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "viewType": "ARTICLE",
            "defaultLanguage": "en",
            "languages": [{"languageCode": "en", "translated": True}],
            "translationState": "TRANSLATED",
        }

    def kcbot(self, i: int) -> dict:
        h = self.h(_tag("kcbot"), i)
        created = self._ms_in_range(h) - 60 * DAY_MS
        return {
            "id": f"kc-{i:03d}",
            "name": f"Knowledge center {i}",
            "description": "",
            "createdBy": {"id": "admin-0", "name": "Ana"},
            "createdDate": created,
            "modifiedBy": {"id": "admin-1", "name": "José"},
            "modifiedDate": created + DAY_MS,
            "environments": ["Production"],
            "priority": i,
            "productId": "prod-1",
            "productName": "Main app",
            "status": "PUBLISHED" if h & 1 else "DRAFT",
            "defaultLanguage": "en",
            "languages": [{"languageCode": "en", "translated": True}],
        }

    def integrations(self) -> list[dict]:
        return [
            {
                "integrationSyncName": name,
                "currentStatus": status,
                "lastSuccessfulDate": self.end_ms - (k + 1) * 3_600_000,
                "lastError": "" if status == "UP" else "401 from Salesforce: session expired",
                "numberOfRecordsProcessed": 1000 * (k + 1),
            }
            for k, (name, status) in enumerate([("Salesforce", "DOWN"), ("Segment", "UP"), ("Slack", "UP")])
        ]

    def attributes(self, model: str) -> list[dict]:
        defaults = (
            ["email", "firstName", "lastName", "lastSeenDate", "score"]
            if model == "user"
            else ["name", "industry", "numberOfEmployees", "plan"]
        )
        custom = ["plan", "seats", "betaOptIn", "signupSource", "npsLastScore"]
        if self.config.extra_custom_attribute:
            custom.append(self.config.extra_custom_attribute)
        out = []
        for k, api_name in enumerate(defaults + custom):
            origin = "DEFAULT" if k < len(defaults) else "CUSTOM"
            out.append(
                {
                    "id": f"{model}-attr-{k}",
                    "name": api_name[0].upper() + api_name[1:],
                    "apiName": api_name,
                    "internalName": api_name if origin == "DEFAULT" else f"custom_{k}",
                    "description": "",
                    "type": "NUMBER" if api_name in ("score", "seats") else "STRING",
                    "state": "ENABLED",
                    "origin": origin,
                    "createdDate": self.start_ms,
                    "modifiedDate": self.start_ms + k,
                    "defaultValue": None,
                }
            )
        return out

    def preferences(self, i: int) -> dict:
        h = self.h(_tag("preferences"), i)
        flag = [True, False, None]
        return {
            "guidedTours": flag[h % 3],
            "onboardingBot": flag[(h >> 2) % 3],
            "productUpdates": flag[(h >> 4) % 3],
            "surveys": flag[(h >> 6) % 3],
            "trackUsage": flag[(h >> 8) % 3],
        }


# -- event builders: (dataset, hash, second hash, date) -> record ---------------------------------


def _base(ds: Dataset, h: int, g: int, date: int, event_type: str, with_session: bool = True) -> dict:
    """The common event fields that are not the record's head (see ``Dataset.event_bytes``)."""
    return {
        "propertyKey": PROPERTY_KEYS[0],
        "eventType": event_type,
        "userType": USER_TYPES[(h >> 20) % len(USER_TYPES)],
        "globalContext": {} if h & 1 else {"environment": "production", "appVersion": f"4.{(g >> 3) % 9}"},
    }


def _page_fields(ds: Dataset, h: int, g: int) -> dict:
    k = (g >> 11) % len(PATHS)
    return {
        "scheme": "https",
        "host": "app.example.com",
        "path": PATHS[k],
        "queryString": "" if g & 1 else "tab=all&sort=desc",
        "hash": "",
        "queryParams": {} if g & 1 else {"tab": ["all"], "sort": ["desc"]},
        "remoteHost": f"10.0.{g % 256}.{h % 256}",
        "referrer": "" if g & 2 else "https://www.google.com/",
        "screenHeight": 1080,
        "screenWidth": 1920,
        "languages": ["en-US", "en"] if g & 4 else ["fr-FR"],
        "pageTitle": TITLES[k],
    }


def _custom(ds: Dataset, h: int, g: int, date: int) -> dict:
    rec = _base(ds, h, g, date, "CUSTOM")
    rec.update(
        {
            "eventName": EVENT_NAMES[(g >> 5) % len(EVENT_NAMES)],
            "attributes": {"count": (g >> 9) % 10, "label": ["a", "b", "ü"][(g >> 13) % 3]} if g & 8 else {},
            "url": f"https://app.example.com{PATHS[(g >> 17) % len(PATHS)]}",
            "referrer": "",
            "remoteHost": f"10.1.{g % 256}.{h % 256}",
        }
    )
    return rec


def _page_view(ds: Dataset, h: int, g: int, date: int) -> dict:
    rec = _base(ds, h, g, date, "PAGE_VIEW")
    rec.update(_page_fields(ds, h, g))
    return rec


def _form_submit(ds: Dataset, h: int, g: int, date: int) -> dict:
    rec = _base(ds, h, g, date, "FORM_SUBMIT")
    rec.update(_page_fields(ds, h, g))
    rec["formData"] = {"email": f"user{h % 1000}@example.com", "company": "Acme Åb"}
    return rec


def _session(ds: Dataset, h: int, g: int, date: int) -> dict:
    rec = _base(ds, h, g, date, "SESSION_INITIALIZED")
    rec.update({"remoteHost": f"10.2.{g % 256}.{h % 256}", "inferredLocation": ds._location(g >> 4)})
    return rec


def _identify(ds: Dataset, h: int, g: int, date: int) -> dict:
    return _base(ds, h, g, date, "IDENTIFY")  # its email is the user's, written with the record's head


def _lead(ds: Dataset, h: int, g: int, date: int) -> dict:
    rec = _base(ds, h, g, date, "LEAD")
    rec["email"] = "" if g & 1 else f"lead{g % 997}@example.org"
    return rec


def _feature_match(ds: Dataset, h: int, g: int, date: int) -> dict:
    rec = _base(ds, h, g, date, "FEATURE_MATCH")
    rec["featureId"] = ds.feature_id((g >> 3) % max(1, ds.config.features))
    return rec


def _segment_match(ds: Dataset, h: int, g: int, date: int) -> dict:
    rec = _base(ds, h, g, date, "SEGMENT_MATCH")
    rec["segmentId"] = ds.segment_id((g >> 3) % max(1, ds.config.segments))
    return rec


def _email(ds: Dataset, h: int, g: int, date: int) -> dict:
    rec = _base(ds, h, g, date, "EMAIL", with_session=False)
    track = EMAIL_TRACK_TYPES[(g >> 3) % len(EMAIL_TRACK_TYPES)]
    bounced = track == "EMAIL_TRACK_BOUNCE"
    clicked = track == "EMAIL_TRACK_CLICK"
    rec.update(
        {
            "engagementId": ds.engagement_id((g >> 9) % max(1, ds.config.engagements)),
            "email": f"user{h % max(1, ds.config.users)}@example.com",
            "emailTrackType": track,
            "status": "5.1.1" if bounced else "",
            "reason": "mailbox unavailable" if bounced else "",
            "bounceType": BOUNCE_TYPES[(g >> 14) % 3 + 1] if bounced else "EMPTY_BOUNCE_TYPE",
            "mtaResponse": "",
            "attempt": str((g >> 16) % 3 + 1),
            "linkIndex": (g >> 18) % 4 if clicked else None,
            "linkType": LINK_TYPES[(g >> 20) % 3 + 1] if clicked else "EMPTY_LINK_TYPE",
            "linkUrl": "https://www.example.com/pricing" if clicked else "",
            "inferredLocation": ds._location(g >> 22),
        }
    )
    return rec


def _view_event(ds: Dataset, h: int, g: int, date: int, survey: bool) -> dict:
    rec = _base(ds, h, g, date, "ENGAGEMENT")
    surveys = ds.survey_engagements() if survey else []
    if survey and surveys:
        eng = surveys[(g >> 3) % len(surveys)]
        content = SURVEY_CONTENT_TYPES[(g >> 9) % len(SURVEY_CONTENT_TYPES)]
    else:
        eng = (g >> 3) % max(1, ds.config.engagements)
        content = VIEW_CONTENT_TYPES[(g >> 9) % len(VIEW_CONTENT_TYPES)]
    completed = bool(g >> 12 & 1)
    rec.update(
        {
            "engagementId": ds.engagement_id(eng),
            "engagementTrackType": "ENGAGEMENT_CLICK" if g >> 13 & 1 else "ENGAGEMENT_VIEW",
            "contentId": f"content-{eng:04d}",
            "contentType": content,
            "executionDate": date - date % 60_000,
            "executionId": f"exec-{(h >> 30) % 100000:05d}",
            "viewEventId": _uuid(g, h),
            "carouselState": ("COMPLETED" if completed else "VIEWED") if content == "IN_APP_CAROUSEL" else None,
            "slideId": "",
            "sequenceNumber": (g >> 14) % 5,
            "linkUrl": "",
            "guideState": ("COMPLETED" if completed else "VIEWED") if content == "IN_APP_GUIDE" else None,
            "stepId": "",
            "surveyState": ("COMPLETED" if completed else "VIEWED") if survey else None,
            "contactMeAllowed": bool(g >> 15 & 1) if survey else None,
            "score": (g >> 16) % 11 if survey and completed else None,
            "comment": ["", "Très bien 👍", "Too slow", ""][(g >> 20) % 4] if survey and completed else "",
            "questionType": "NPS" if content == "IN_APP_SURVEY_NPS" else ("RATING" if survey else ""),
            "selectionIds": [f"opt-{(g >> 22) % 4}"] if survey and completed else [],
            "path": PATHS[(g >> 24) % len(PATHS)],
        }
    )
    return rec


_VARIANTS = 1024
_VIEW_TYPES = ("engagementView", "survey")
_HEAD_KEYS = ("eventId", "identifyId", "date", "sessionId", "accountId", "executionDate", "viewEventId")
_EVENT_BUILDERS: dict[str, Callable[[Dataset, int, int, int], dict]] = {
    "custom": _custom,
    "pageView": _page_view,
    "session": _session,
    "identify": _identify,
    "feature_match": _feature_match,
    "segment_match": _segment_match,
    "engagementView": lambda ds, h, g, d: _view_event(ds, h, g, d, survey=False),
    "email": _email,
    "lead": _lead,
    "formSubmit": _form_submit,
    "survey": lambda ds, h, g, d: _view_event(ds, h, g, d, survey=True),
}
