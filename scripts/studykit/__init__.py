"""The DiVeQ-versus-STE study behind ``scripts/study.py``: ``common`` (constants, arms, run folders),
``run`` (training every arm and seed), ``evaluate`` (scoring the final models), ``statistics``
(t-tests, the conclusion) and ``report`` (tables, curves, the markdown section)."""
