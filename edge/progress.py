"""One-line progress display: redraws in place on a terminal, sparse plain lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """`Progress(total, "train")`; call `update(n, **fields)`; `close()` ends the line."""

    def __init__(
        self, total: int, label: str, stream: TextIO | None = None, enabled: bool = True
    ) -> None:
        self.total, self.label, self.enabled = max(total, 1), label, enabled
        self.stream = stream or sys.stderr
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = time.perf_counter()
        self.done = 0
        self._last_plain = -1

    def update(self, done: int, **fields: object) -> None:
        if not self.enabled:
            return
        self.done = done
        elapsed = time.perf_counter() - self.start
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else 0.0
        extras = "  ".join(
            f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in fields.items()
        )
        width = 20
        filled = int(width * done / self.total)
        line = (
            f"{self.label} [{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} "
            f" {extras}  {rate:.1f}/s  ETA {eta:.0f}s"
        )
        if self.interactive:
            self.stream.write("\r\x1b[2K" + line)
            self.stream.flush()
        else:
            quarter = 4 * done // self.total  # a few lines in logs, not one per step
            if quarter != self._last_plain:
                self._last_plain = quarter
                self.stream.write(line + "\n")

    def close(self) -> None:
        if self.enabled and self.interactive:
            self.stream.write("\n")
            self.stream.flush()
