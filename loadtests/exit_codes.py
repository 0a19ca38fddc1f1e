"""Every exit code brink's commands return, in one place.

| code | name | when |
|---|---|---|
| 0 | ``OK`` | the run finished and every threshold held |
| 1 | ``THRESHOLDS_BREACHED`` | the run finished but at least one threshold failed |
| 2 | ``USAGE`` | bad command line or configuration (argparse's own code) |
| 3 | ``RUN_FAILED`` | the stack or the load generator failed: no verdict on the service |
| 4 | ``ABORTED_ON_COLLAPSE`` | goodput collapsed at or below the peak (not in ``breakpoint``) |
| 5 | ``REGRESSION`` | ``compare``: the current run regressed against the baseline |
| 6 | ``DATA_LOST`` | the order ledger did not hold: lost, unexpected or duplicate orders |
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes; see the module docstring for when each applies."""

    OK = 0
    THRESHOLDS_BREACHED = 1
    USAGE = 2
    RUN_FAILED = 3
    ABORTED_ON_COLLAPSE = 4
    REGRESSION = 5
    DATA_LOST = 6
