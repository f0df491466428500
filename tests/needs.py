"""Skip markers for what a test needs from the machine, each naming what is missing and who installs it.

tests/system-deps.sh installs all of it in CI (as root), so none of these
skips there; on a developer's machine without root they say what to install.
"""

from __future__ import annotations

import pytest
from harness import CRONTAB

crontab = pytest.mark.skipif(
    CRONTAB is None,
    reason="crontab (Debian package cron) is not installed; tests/system-deps.sh installs it as root")
