"""Resource ids that sort by creation time, so "newest first" is "largest id first"."""

import secrets
import time


def new_id() -> str:
    """32 hex characters: 12 of milliseconds since the epoch, then 20 random."""
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"
