"""A one-line progress bar for a training job: epoch, loss, accuracy, ETA.

On a terminal the line is redrawn in place; written to a file or a pipe, a line is printed at
most every few seconds, and always for the last epoch, so logs stay short.
"""

import time
from collections import deque
from typing import Any, TextIO

from service.client.numbers import significant

WIDTH = 24
# ETA from the pace epochs arrived at over this many seconds (the stream delivers them in bursts,
# one per poll of the server, so a shorter window would swing).
WINDOW_SECONDS = 30.0
# Below this span of arrivals the pace is unknown; the epochs' own training time stands in.
MIN_SPAN_SECONDS = 1.0
# Seconds between lines when not on a terminal.
LOG_EVERY_SECONDS = 5.0


def duration(seconds: float) -> str:
    hours, rest = divmod(round(seconds), 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


class Progress:
    def __init__(self, *, total: int, out: TextIO) -> None:
        self.total = total
        self.out = out
        self.live = out.isatty()
        self.arrivals: deque[tuple[float, int, float]] = deque()
        self.last_line = 0.0
        self.drawn = False

    def epoch(self, metric: dict[str, Any]) -> None:
        now = time.monotonic()
        epoch = int(metric["epoch"])
        self.arrivals.append((now, epoch, float(metric["seconds"])))
        while now - self.arrivals[0][0] > WINDOW_SECONDS:
            self.arrivals.popleft()
        line = self.line(metric)
        if self.live:
            self.out.write("\r" + line + "\x1b[K")
            self.drawn = True
        elif epoch == self.total or now - self.last_line >= LOG_EVERY_SECONDS:
            self.out.write(line + "\n")
            self.last_line = now
        self.out.flush()

    def line(self, metric: dict[str, Any]) -> str:
        epoch = int(metric["epoch"])
        done = min(epoch / self.total, 1.0) if self.total else 1.0
        filled = int(done * WIDTH)
        parts = [
            f"epoch {epoch}/{self.total} [{'#' * filled}{'.' * (WIDTH - filled)}] {done:4.0%}",
            f"loss {significant(metric['loss'])}",
        ]
        if metric.get("accuracy") is not None:
            parts.append(f"acc {significant(metric['accuracy'])}")
        if metric.get("val_loss") is not None:
            parts.append(f"val_loss {significant(metric['val_loss'])}")
        if metric.get("val_accuracy") is not None:
            parts.append(f"val_acc {significant(metric['val_accuracy'])}")
        parts.append(f"ETA {duration(self.seconds_left(epoch))}")
        return "  ".join(parts)

    def seconds_left(self, epoch: int) -> float:
        """Remaining epochs at the pace they arrived lately; until the arrivals span a second
        (the first burst may be a backlog read back on connect), their training time."""
        remaining = max(self.total - epoch, 0)
        first_time, first_epoch, _ = self.arrivals[0]
        last_time, last_epoch, _ = self.arrivals[-1]
        if last_epoch > first_epoch and last_time - first_time >= MIN_SPAN_SECONDS:
            return remaining * (last_time - first_time) / (last_epoch - first_epoch)
        mean = sum(seconds for _, _, seconds in self.arrivals) / len(self.arrivals)
        return remaining * mean

    def message(self, text: str) -> None:
        """A line of its own, below the bar."""
        self.finish()
        self.out.write(text + "\n")
        self.out.flush()

    def finish(self) -> None:
        if self.drawn:
            self.out.write("\n")
            self.drawn = False
