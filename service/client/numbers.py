"""Numbers as the CLI prints them: significant digits, not fixed decimals, so 1.2e34 is not 35
digits and 0.00003 is not 0.0000 (the dashboard's format.js does the same)."""

import math


def significant(value: float | None, digits: int = 4) -> str:
    """`digits` significant digits; exponent form below 1e-3 and from 1e6; "-" for None."""
    if value is None:
        return "-"
    if isinstance(value, int) or (
        math.isfinite(value) and value == int(value) and abs(value) < 1e9
    ):
        return f"{int(value):,}"
    if not math.isfinite(value):
        return str(value)
    size = abs(value)
    if size >= 1e6 or size < 1e-3:
        mantissa, exponent = f"{value:.{digits - 1}e}".split("e")
        return f"{_trim(mantissa)}e{int(exponent)}"
    decimals = max(0, digits - 1 - math.floor(math.log10(size)))
    return _trim(f"{value:.{decimals}f}")


def _trim(text: str) -> str:
    return text.rstrip("0").rstrip(".") if "." in text else text
