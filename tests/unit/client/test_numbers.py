"""The CLI's numbers: significant digits, exponent form for the very large and very small."""

import pytest

from service.client.numbers import significant


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (1.2e34, "1.2e34"),
        (3e-5, "3e-5"),
        (0.00012345, "1.234e-4"),
        (0.123456, "0.1235"),
        (550.123, "550.1"),
        (0.17, "0.17"),
        (12345.6, "12346"),
        (2.0, "2"),
        (1_234_567, "1,234,567"),
        (-0.5, "-0.5"),
        (0.0, "0"),
        (None, "-"),
        (float("inf"), "inf"),
    ],
)
def test_numbers_keep_four_significant_digits(value: float | None, shown: str) -> None:
    assert significant(value) == shown
