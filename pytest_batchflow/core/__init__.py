"""Pure planning logic: no pytest, no xdist, no I/O.

Everything here takes plain values (node id strings, durations, worker counts)
and returns decisions, so it can be unit- and property-tested in isolation and
reused by both the serial runner and the xdist scheduler.
"""
