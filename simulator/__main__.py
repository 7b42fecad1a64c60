"""`python -m simulator`: run the simulated vLLM server."""

from simulator.cli import main

if __name__ == "__main__":
    main()
