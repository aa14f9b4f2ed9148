"""Wire types shared by every domain's request schemas, so hostile values are refused the same
way everywhere with their own error code (see `core.errors.VALIDATION_CODES`).

- Datetimes must carry a UTC offset: a naive one is refused (`DATETIME_OFFSET_REQUIRED`), never
  guessed as UTC or local time, in query parameters and bodies alike. They are converted to UTC
  and must lie in 1970-01-01 .. 9999-12-30 (`DATETIME_OUT_OF_RANGE`): the ends of the calendar
  would overflow the arithmetic done on them (ranges, interval floors, time zones).
- Booleans are JSON `true`/`false` only: `0`, `1`, `"yes"` are refused (`NOT_A_BOOLEAN`).
- `null` for a field whose stored column is required is refused (`NULL_NOT_ALLOWED`), not read as
  "leave unchanged"; leave the field out for that.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, Strict
from pydantic_core import PydanticCustomError

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, tzinfo=UTC)
MAX_EPOCH = int(LATEST.timestamp())  # epoch seconds beyond this do not fit a datetime with margin


def _in_calendar(value: datetime) -> datetime:
    try:
        moment = value.astimezone(UTC)
    except OverflowError:
        moment = None
    if moment is None or not EARLIEST <= moment <= LATEST:
        raise PydanticCustomError(
            "datetime_out_of_range", "a datetime must lie between 1970-01-01 and 9999-12-30 UTC"
        )
    return moment


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_in_calendar)]
StrictBool = Annotated[bool, Strict()]


def refuse_nulls(data: Any, required: frozenset[str]) -> Any:
    """For a `model_validator(mode="before")`: refuse an explicit `null` for any of `required`."""
    if isinstance(data, dict):
        for name in sorted(required):
            if name in data and data[name] is None:
                raise PydanticCustomError(
                    "null_not_allowed", "`{field}` may not be null; leave it out to keep it", {"field": name}
                )
    return data
