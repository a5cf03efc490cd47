"""What the source raises, so callers can tell a setting to fix from an answer of the API."""


class AptrinsicConfigError(ValueError):
    """Settings that cannot work; raised before any request is sent."""


class AptrinsicError(Exception):
    """An answer from the API that retrying will not change."""


class AptrinsicAuthError(AptrinsicError):
    """401 or 403: the key, its permissions or its region."""


class AptrinsicPagingError(AptrinsicError):
    """The API's pages do not prove progress or completeness: a repeated scrollId, too many pages,
    a short page the API calls not the last, or fewer records than its ``totalHits``."""


class AptrinsicDeadlineError(AptrinsicError):
    """A run's time budget ran out, or its requests were cancelled."""
