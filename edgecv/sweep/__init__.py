"""``edgecv sweep``: a grid of models × width multipliers × resolutions × precisions × engines,
each point exported, evaluated where it has weights, and timed; the results ranked by accuracy
against latency under the user's constraint.

:mod:`.grid` builds the points, :mod:`.point` does one point's work, :mod:`.executor` runs them
(locally; Ray in :mod:`.ray_executor`, imported only when asked for), :mod:`.store` keeps the sweep
folder, :mod:`.results` writes the report.
"""
