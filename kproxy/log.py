"""kproxy's logging conventions: one logger, and a NOTICE level for features in use.

NOTICE sits between INFO and WARNING, so it shows at the default verbosity: one line
on stderr per kproxy feature in use (stdout stays kubectl's single line).
"""

from __future__ import annotations

import logging

__all__ = ["NOTICE", "log"]

NOTICE = 25
logging.addLevelName(NOTICE, "NOTICE")

log = logging.getLogger("kproxy")
