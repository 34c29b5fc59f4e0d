"""Coverage-guided fuzz targets, one module each with ``TestOneInput(data: bytes)``.

A target raises (an AssertionError, or whatever escaped the code under test) only on a fault:
any input the code refuses the way it is meant to returns quietly.
"""

TARGETS = ("kcp_session", "schedules", "codec")
