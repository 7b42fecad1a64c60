"""`python -m loadgen grid|quality|options`: kept for the README's commands; the orchestrator runs them."""

from orchestrator.cli import main

if __name__ == "__main__":
    main()
