"""`python -m orchestrator` entry point (also `python -m loadgen`)."""

from orchestrator.cli import main

if __name__ == "__main__":
    main()
