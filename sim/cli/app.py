"""``pbrsim app``: the commissioners' web app."""

from __future__ import annotations

from sim.cli.common import whole_number


def cmd_app(args) -> int:
    from sim.webapp import launch  # Streamlit is an extra: imported only for this command

    return launch(port=args.port, scenarios=args.scenarios)


def add_commands(sub) -> None:
    """Register ``app``."""
    app = sub.add_parser("app", help="the commissioners' web app on http://127.0.0.1 (needs: pip install -e '.[app]')",
                         description="Start the commissioners' web app on http://127.0.0.1 (loopback only, no "
                                     "telemetry). Needs the app extra: pip install -e '.[app]'.")
    app.add_argument("--port", type=whole_number(1, 65535, "the port"), help="port (default: the first free one from 8501)")
    app.add_argument("--scenarios", help="folder of site scenarios to offer (default: the shipped ones)")
    app.set_defaults(func=cmd_app)
