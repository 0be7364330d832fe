"""The documented entry point `python -m demo.vector_search …`; the commands live in `demo.search.cli`."""

import sys

from demo.search.cli import main

if __name__ == "__main__":
    sys.exit(main())
