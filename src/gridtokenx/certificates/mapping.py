"""Row to wire and row to ledger mappings of a certificate, each defined once."""

from __future__ import annotations

from gridtokenx.certificates import rules
from gridtokenx.certificates.models import Certificate
from gridtokenx.certificates.rules import Period
from gridtokenx.certificates.schemas import CertificateOut, ExcludedReading


def period_of(row: Certificate) -> Period:
    return Period(int(row.period_start.timestamp()), int(row.period_end.timestamp()))


def expected_fields(row: Certificate) -> dict[str, str]:
    """The metadata the ledger must carry for this row."""
    return dict(
        rules.metadata_fields(
            facility_id=row.facility_id,
            energy_wh=row.energy_wh,
            period=period_of(row),
            technology=row.technology,
            country=row.country,
            zone=row.zone,
            readings_hash=row.readings_hash,
        )
    )


def certificate_out(row: Certificate) -> CertificateOut:
    return CertificateOut(
        id=row.id,
        meter_id=row.meter_id,
        facility_id=row.facility_id,
        period_start=row.period_start,
        period_end=row.period_end,
        energy_wh=row.energy_wh,
        technology=row.technology,
        country=row.country,
        zone=row.zone,
        readings_hash=row.readings_hash,
        mint=row.mint,
        status=row.status,
        owner_id=row.owner_id,
        holder_wallet=row.holder_wallet,
        transfers=row.transfers,
        issued_at=row.issued_at,
        excluded=[ExcludedReading(**item) for item in row.excluded],
        beneficiary=row.beneficiary,
        purpose=row.purpose,
        location=row.location,
        withdraw_reason=row.withdraw_reason,
    )
