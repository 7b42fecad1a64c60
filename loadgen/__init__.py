"""The code that runs inside each Locust process: APIs, SSE reading and timing, workloads, request records,
Locust event glue, the web UI's LLM tab and the live stopping rule."""
