"""Sun elevation from latitude, longitude and time, for the PV-at-night check.

Implements NOAA's solar position equations (the NOAA Solar Calculator, after Meeus, "Astronomical
Algorithms"). Accuracy: about 0.01-0.02 degrees of elevation for years 1800-2100, sunrise/sunset
times within a minute between +/-72 degrees latitude. The result is geometric, without atmospheric
refraction (which lifts the apparent sun by about 0.57 degrees at the horizon), so "below -2 degrees"
reliably means no direct sunlight. Angles are floats: they are geometry, not energy.
"""

from __future__ import annotations

from math import acos, asin, cos, degrees, radians, sin, tan

_UNIX_EPOCH_JULIAN_DAY = 2440587.5
_J2000_JULIAN_DAY = 2451545.0


def solar_elevation_deg(latitude: float, longitude: float, timestamp: int | float) -> float:
    """Geometric sun elevation in degrees (negative below the horizon) at a UTC epoch `timestamp`.

    `latitude` is north-positive, `longitude` east-positive, both in degrees.
    """
    century = (timestamp / 86400 + _UNIX_EPOCH_JULIAN_DAY - _J2000_JULIAN_DAY) / 36525
    mean_longitude = (280.46646 + century * (36000.76983 + century * 0.0003032)) % 360
    mean_anomaly = 357.52911 + century * (35999.05029 - 0.0001537 * century)
    eccentricity = 0.016708634 - century * (0.000042037 + 0.0000001267 * century)
    anomaly = radians(mean_anomaly)
    center = (
        sin(anomaly) * (1.914602 - century * (0.004817 + 0.000014 * century))
        + sin(2 * anomaly) * (0.019993 - 0.000101 * century)
        + sin(3 * anomaly) * 0.000289
    )
    omega = radians(125.04 - 1934.136 * century)
    apparent_longitude = radians(mean_longitude + center - 0.00569 - 0.00478 * sin(omega))
    arc_seconds = 21.448 - century * (46.815 + century * (0.00059 - century * 0.001813))
    mean_obliquity = 23 + (26 + arc_seconds / 60) / 60
    obliquity = radians(mean_obliquity + 0.00256 * cos(omega))
    declination = asin(sin(obliquity) * sin(apparent_longitude))

    y = tan(obliquity / 2) ** 2
    longitude_rad = radians(mean_longitude)
    equation_of_time_min = 4 * degrees(
        y * sin(2 * longitude_rad)
        - 2 * eccentricity * sin(anomaly)
        + 4 * eccentricity * y * sin(anomaly) * cos(2 * longitude_rad)
        - 0.5 * y * y * sin(4 * longitude_rad)
        - 1.25 * eccentricity * eccentricity * sin(2 * anomaly)
    )
    true_solar_minutes = ((timestamp % 86400) / 60 + equation_of_time_min + 4 * longitude) % 1440
    hour_angle = radians(true_solar_minutes / 4 - 180)

    lat = radians(latitude)
    cos_zenith = sin(lat) * sin(declination) + cos(lat) * cos(declination) * cos(hour_angle)
    return 90 - degrees(acos(max(-1.0, min(1.0, cos_zenith))))
