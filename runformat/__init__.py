"""What the orchestrator, the Locust processes and analysis share: the run format and its statistics rules.

Imports nothing of ours and nothing outside the standard library, so every side can depend on it.
"""
