"""The orchestrator, outside Locust: scenarios, the grid runner and its resume, target probing, /metrics
scraping, the quality pass. It starts Locust processes; it never imports gevent or locust itself."""
