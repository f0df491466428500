"""Skip markers for what a test needs from the machine, each naming what is missing and who installs it.

tests/system-deps.sh installs all of it in CI (as root), so none of these
skips there; on a developer's machine without root they say what to install.
"""

from __future__ import annotations

import os

import pytest
import slurmlab
from harness import CRONTAB

crontab = pytest.mark.skipif(
    CRONTAB is None,
    reason="crontab (Debian package cron) is not installed; tests/system-deps.sh installs it as root")

# A real SLURM cluster (tests/slurmlab.py). In CI nothing may be missing: the
# marker lets the tests run there, and the slurm_lab fixture fails naming what lacks.
_SLURM_LACKS = slurmlab.missing(accounting=True)
slurm = pytest.mark.skipif(
    bool(_SLURM_LACKS) and not os.environ.get("CI"),
    reason=f"the SLURM lab needs {_SLURM_LACKS}")
