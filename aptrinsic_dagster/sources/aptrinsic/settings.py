"""The Aptrinsic read surface as data: one row per table, from the vendor's Swagger contract."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .errors import AptrinsicConfigError

REGIONS = {
    "us": "https://api.aptrinsic.com/v1",
    "eu": "https://api-eu.aptrinsic.com/v1",
    "us2": "https://api-us2.aptrinsic.com/v1",
}
API_KEY_HEADER = "X-APTRINSIC-API-KEY"
MAX_WINDOW_DAYS = 190  # the API answers 400 "Exceeded date range190days" above it
# requests/s; the API allows ~200/s and answers 429 above. The limiter holds every one-second window to
# it (client.py), and the drift sensor's 10/s beside it keeps the subscription under 200.
DEFAULT_RATE_LIMIT = 180.0
DEFAULT_PREFERENCE_WORKERS = 8

# Non-string scalar fields of the contract's definitions (no name has two types there). A page
# where such a field is null throughout still creates its column with the contract's type.
CONTRACT_BOOLS = frozenset(
    ["contactMeAllowed", "globalUnsubscribe", "guidedTours", "onboardingBot", "productUpdates", "surveys", "trackUsage"]
)
CONTRACT_INTS = frozenset(
    [
        "healthScore",
        "linkIndex",
        "numberOfEmployees",
        "numberOfRecordsProcessed",
        "numberOfUsers",
        "numberOfVisits",
        "priority",
        "score",
        "screenHeight",
        "screenWidth",
        "sequenceNumber",
    ]
)
CONTRACT_DOUBLES = frozenset(["latitude", "longitude", "nps"])

Paging = Literal["scroll", "page", "none"]
_EVENT_JSON = ("globalContext",)


@dataclass(frozen=True)
class Table:
    """One Aptrinsic GET list endpoint. ``name`` is the dlt resource, the DuckDB table and the asset."""

    name: str
    path: str
    record_key: str | None  # None: the body is a bare array
    paging: Paging
    max_page_size: int
    primary_key: str
    description: str
    windowed: bool = False
    # Lists and free-form maps land as JSON columns; other nested objects (location,
    # customAttributes, ...) are flattened into `parent__child` columns.
    json_fields: tuple[str, ...] = ()


def _event(name: str, path: str, key: str, what: str, json_fields: tuple[str, ...] = ()) -> Table:
    return Table(name, path, key, "scroll", 1000, "eventId", what, windowed=True, json_fields=_EVENT_JSON + json_fields)


EVENT_TABLES = (
    _event(
        "events_custom",
        "/events/custom",
        "customEvents",
        "Custom events sent by the product.",
        ("attributes",),
    ),
    _event("events_page_view", "/events/pageView", "results", "Page views.", ("queryParams", "languages")),
    _event("events_session", "/events/session", "sessionInitializedEvents", "Sessions started."),
    _event("events_identify", "/events/identify", "identifyEvents", "Identify calls."),
    _event("events_feature_match", "/events/feature_match", "featureMatchEvents", "Feature matches."),
    # The contract's quirk: segment matches answer under `featureMatchEvents`.
    _event("events_segment_match", "/events/segment_match", "featureMatchEvents", "Segment matches."),
    _event(
        "events_engagement_view",
        "/events/engagementView",
        "results",
        "Engagement views and clicks.",
        ("selectionIds",),
    ),
    _event("events_email", "/events/email", "results", "Email tracking events."),
    _event("events_lead", "/events/lead", "results", "Lead events."),
    _event(
        "events_form_submit",
        "/events/formSubmit",
        "results",
        "Form submissions.",
        ("queryParams", "formData", "languages"),
    ),
    _event(
        "survey_responses",
        "/survey/responses",
        "results",
        "Survey responses (NPS, CES, rating, ...).",
        ("selectionIds",),
    ),
)

SNAPSHOT_TABLES = (
    Table(
        "users",
        "/users",
        "users",
        "scroll",
        1000,
        "identifyId",
        "Users (people) with their attributes.",
        json_fields=("propertyKeys", "channelMetricList", "lastVisitedUserAgentData"),
    ),
    Table(
        "accounts",
        "/accounts",
        "accounts",
        "scroll",
        1000,
        "id",
        "Accounts (companies).",
        json_fields=("propertyKeys",),
    ),
    Table(
        "feature_flags",
        "/feature",
        "features",
        "page",
        200,
        "id",
        "Features and modules (/v1/feature).",
        json_fields=("featureLabels",),
    ),
    Table("segments", "/segment", "segments", "page", 200, "id", "Segments."),
    Table(
        "engagements",
        "/engagement",
        "engagements",
        "page",
        500,
        "id",
        "Engagements (guides, surveys, ...).",
        json_fields=("languages", "propertyKeys", "envs"),
    ),
    Table(
        "articles",
        "/articles",
        "articleExternalViewList",
        "page",
        500,
        "id",
        "Knowledge-center articles.",
        json_fields=("articleKCs", "languages"),
    ),
    Table(
        "kcbot",
        "/kcbot",
        "kcList",
        "page",
        500,
        "id",
        "Knowledge-center bots.",
        json_fields=("environments", "languages"),
    ),
    Table(
        "admin_integrations",
        "/admin/monitoring/integrations",
        "integrationStatuses",
        "none",
        0,
        "integrationSyncName",
        "Integration sync statuses.",
    ),
    Table(
        "user_attributes",
        "/admin/model/user/attributes",
        None,
        "none",
        0,
        "id",
        "User attribute definitions (default and custom).",
    ),
    Table(
        "account_attributes",
        "/admin/model/account/attributes",
        None,
        "none",
        0,
        "id",
        "Account attribute definitions (default and custom).",
    ),
)

PREFERENCES = Table(
    "user_preferences",
    "/user/preferences/{identifyId}",
    None,
    "none",
    0,
    "identifyId",
    "Each loaded user's preferences (one request per user).",
)

TABLES = {t.name: t for t in (*EVENT_TABLES, *SNAPSHOT_TABLES, PREFERENCES)}


def page_sizes_by_table(page_size: int | None, page_sizes: dict[str, int]) -> dict[str, int]:
    """The page each table asks for: ``page_sizes[table]`` exactly (within the endpoint's maximum,
    or an error: the API answers 400 above it), else the endpoint's maximum capped at ``page_size``."""
    unknown = set(page_sizes) - set(TABLES)
    if unknown:
        raise AptrinsicConfigError(f"page_sizes names unknown tables: {', '.join(sorted(unknown))}")
    if page_size is not None and page_size < 1:
        raise AptrinsicConfigError(f"page_size must be at least 1, got {page_size}")
    sizes = {}
    for t in TABLES.values():
        size = page_sizes.get(t.name)
        if size is not None and t.max_page_size and not 1 <= size <= t.max_page_size:
            raise AptrinsicConfigError(
                f"page_sizes[{t.name!r}] = {size}, but the API allows 1..{t.max_page_size} on {t.path} "
                "(it answers 400 above the maximum)."
            )
        sizes[t.name] = size or min(page_size or t.max_page_size, t.max_page_size)
    return sizes
