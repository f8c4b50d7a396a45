"""Sovereignty: regions and their policies, the egress gate and its audit log, cross-region operations and erasure."""
