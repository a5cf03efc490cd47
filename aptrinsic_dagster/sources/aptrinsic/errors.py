"""What the source raises, so callers can tell a setting to fix from an answer of the API."""


class AptrinsicConfigError(ValueError):
    """Settings that cannot work; raised before any request is sent."""


class AptrinsicError(Exception):
    """An answer from the API that retrying will not change."""


class AptrinsicAuthError(AptrinsicError):
    """401 or 403: the key, its permissions or its region."""
