"""Parsing libraries' own log lines (RapidOCR's and rapid-layout's coloured [INFO] lines, each
module with its own logger and handler) kept quiet unless asked for with KBQA_LOG=debug (kbqa -v
sets it), so they never break a progress bar or a --json document."""

from __future__ import annotations

import logging
import os


def quiet_libraries() -> None:
    """Call before a chatty library makes its models: without KBQA_LOG=debug, records below WARNING
    are dropped process-wide (the libraries set their loggers' levels themselves, so levels alone
    would not hold)."""
    debug = os.environ.get("KBQA_LOG", "").lower() == "debug"
    logging.disable(logging.NOTSET if debug else logging.INFO)
