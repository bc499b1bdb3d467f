"""``python -m sim.webapp [--port N] [--scenarios FOLDER]``: start the commissioners' web app."""

import argparse
import sys

from sim.webapp import launch


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.webapp", description="Start the pbrsim web app on "
                                     "127.0.0.1 (Streamlit; needs the app extra).")
    parser.add_argument("--port", type=int, default=None, help="port (default: the first free from 8501)")
    parser.add_argument("--scenarios", default=None, help="folder of site scenarios (default: ./scenarios)")
    args = parser.parse_args(argv)
    return launch(args.port, scenarios=args.scenarios)


if __name__ == "__main__":
    sys.exit(main())
