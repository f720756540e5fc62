"""Reporting to the top-level node: the outbox's delivery, statistics, the monthly report."""
