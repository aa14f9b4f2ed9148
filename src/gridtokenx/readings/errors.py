"""Why an incoming reading could not be decoded or authenticated, as a machine-readable code.

VEE outcomes (a reading that decoded fine but breaks a metering rule) have their own codes in
`gridtokenx.readings.vee`; these codes are about the bytes on the wire.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    MALFORMED_JSON = "MALFORMED_JSON"  # not JSON at all (includes NaN/Infinity in the compatibility shapes)
    DUPLICATE_KEY = "DUPLICATE_KEY"  # one object names the same key twice
    FLOAT_NOT_ALLOWED = "FLOAT_NOT_ALLOWED"  # a float, NaN or Infinity in a native reading
    SCHEMA_INVALID = "SCHEMA_INVALID"  # missing, unknown or ill-typed field; `path` says which
    SIGNATURE_MISSING = "SIGNATURE_MISSING"  # a native reading without `sig`
    SIGNATURE_INVALID = "SIGNATURE_INVALID"  # Ed25519 verification failed (forged, tampered or wrong key)
    BATCH_TOO_LARGE = "BATCH_TOO_LARGE"  # more items than the caller allows
    SERIAL_MISMATCH = "SERIAL_MISMATCH"  # body names a different meter than the URL
    JSON_TOO_DEEP = "JSON_TOO_DEEP"  # nested deeper than any real body (a recursion limit, refused early)
    TIMESTAMP_OUT_OF_RANGE = "TIMESTAMP_OUT_OF_RANGE"  # before 1970 or past what a datetime holds
    EXTRAS_TOO_LARGE = "EXTRAS_TOO_LARGE"  # the unknown fields kept with a compatibility reading


class ReadingError(Exception):
    """A rejected reading (or request): `code`, a human `message`, and a JSON `path` such as `$[3].seq`."""

    def __init__(self, code: ErrorCode, message: str, path: str | None = None) -> None:
        super().__init__(f"{code}: {message}" + (f" at {path}" if path else ""))
        self.code = code
        self.message = message
        self.path = path

    def located(self, prefix: str) -> ReadingError:
        """The same error inside the item at `prefix` (e.g. `$[3]`): `$.seq` becomes `$[3].seq`."""
        inner = self.path[1:] if self.path and self.path.startswith("$") else ""
        return ReadingError(self.code, self.message, prefix + inner)


HTTP_STATUS = {
    ErrorCode.MALFORMED_JSON: 400,
    ErrorCode.JSON_TOO_DEEP: 400,
    ErrorCode.EXTRAS_TOO_LARGE: 413,
    ErrorCode.BATCH_TOO_LARGE: 413,
    ErrorCode.SIGNATURE_MISSING: 401,
    ErrorCode.SIGNATURE_INVALID: 401,
}


def http_status(code: ErrorCode) -> int:
    """The HTTP status a request refused with `code` gets (422 unless listed)."""
    return HTTP_STATUS.get(code, 422)
