"""Start the web app: `python -m demo [--port 5000] [--host 127.0.0.1] [--config NAME|PATH]`.

Served by waitress (a production WSGI server, threads for the page requests, set as `demo.web.server` says;
generation runs in the app's own worker thread); debug mode is never on here.
"""

from __future__ import annotations

import argparse
import logging
import sys

from demo.generation.config import config_help


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1", help="127.0.0.1 (this machine only) by default")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--config", help=f"{config_help()} (default: embedded)")
    parser.add_argument("--data-dir", help="gallery, index and secret key (default: instance/)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from demo.web import create_app
    from demo.web.server import serve

    overrides = {key: value for key, value in (("GENERATOR_CONFIG", args.config), ("DATA_DIR", args.data_dir)) if value}
    try:
        app = create_app(overrides)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"한국어 이미지 생성기: http://{args.host}:{args.port}/  (Ctrl+C to stop)", flush=True)
    serve(app, args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
