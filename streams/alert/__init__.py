"""Latency alerts: rules evaluated on the merged latency windows, with a stable lifecycle per
alert (pending, firing, resolved) and the critical-path attribution of a firing alert."""
