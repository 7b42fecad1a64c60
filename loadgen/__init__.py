"""Locust-side machinery: SSE parsing and timing, workloads, request logs, Locust glue, the grid runner."""
