"""Trace assembly: buffering spans by trace id and the pure analysis of an assembled trace.

`structure` (parent links, roots, warnings, depth), `skew` (clock-skew adjustment),
`critical_path` (the critical path and its self time) and `record` (the `trace.avsc` record)
import nothing from Kafka or Faust.
"""
