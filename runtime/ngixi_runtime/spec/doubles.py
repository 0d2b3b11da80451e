"""Which integers a double holds: the one test of "beyond a double's range" for call data JSON, a component's
typed arguments and the values an isolated tenant's wire carries."""

from __future__ import annotations

# The least integer that reads as an infinite double: halfway between the largest double (2**1024 - 2**971) and
# 2**1024, where rounding to the nearest goes up. A JSON number below it reads as a finite double, as `1.8e308`
# written with more digits does, whether it is written as an integer or not.
_LEAST_BEYOND = 2**1024 - 2**970
_BITS_WITHIN = 1023  # an integer of at most this many bits is always within


def beyond_double(integer: int) -> bool:
    """Whether `integer` is beyond a double's range: it would read as an infinite double."""
    return integer.bit_length() > _BITS_WITHIN and abs(integer) >= _LEAST_BEYOND
