"""The canonical records every stage shares (span, and later trace, latency window, alert)."""
