"""Logging set-up: stderr plus a rotating file in the data directory.

A filter masks every secret value the config loader substituted (``${ENV}``,
``${file:...}``) in every record, as a last line of defence: code should
never log a secret, and if it does by mistake the value still never reaches
a log file.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from collections.abc import Iterable
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)-5s %(name)s: %(message)s"
MAX_BYTES = 10 * 1024 * 1024
BACKUPS = 5


class SecretMask(logging.Filter):
    """Replaces known secret values in log messages with ``***``."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: tuple[str, ...] = ()

    def update(self, secrets: Iterable[str]) -> None:
        # Longest first so a secret containing another is masked whole;
        # very short values are skipped to avoid masking ordinary words.
        self._secrets = tuple(sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True))

    def mask(self, text: str) -> str:
        """``text`` with every known secret replaced by ``***`` (for what is not a log
        record but is kept as long: audit entries made of exception messages)."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            message = record.getMessage()
            masked = message
            for secret in self._secrets:
                masked = masked.replace(secret, "***")
            if masked != message:
                record.msg, record.args = masked, None
            if record.exc_text:
                for secret in self._secrets:
                    record.exc_text = record.exc_text.replace(secret, "***")
        return True


secret_mask = SecretMask()


def setup_logging(data_dir: Path | None, level: str = "INFO") -> Path | None:
    """Configure the root logger; returns the log file path (None without a data dir)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(level)
    formatter = logging.Formatter(FORMAT)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    log_file = None
    if data_dir is not None:
        log_dir = data_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        log_file = log_dir / "dialwatch.log"
        handlers.append(
            logging.handlers.RotatingFileHandler(
                log_file, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8"
            )
        )
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(secret_mask)
        root.addHandler(handler)
    # waitress logs every queue-depth warning; keep its errors only
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    return log_file
