"""What pingch writes and the watcher reads: events, the reader, the legacy format, wake-ups.

Standard library only (pingch imports events and wake on every job).
"""
