"""Reductions of request logs and Locust CSVs into capacity, comparison, cost and SLO tables, and reports."""
