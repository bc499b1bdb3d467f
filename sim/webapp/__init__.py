"""The commissioners' web app (Streamlit): design a contract, see what it buys and risks, compare designs on
the same simulated clients, download the files that reproduce it.

``launch(port)`` starts ``python -m streamlit run app.py`` on 127.0.0.1 with telemetry off, headless, without
a file watcher and with the viewer toolbar (the same settings as ``.streamlit/config.toml`` beside ``app.py``);
``python -m sim.webapp [--port N]`` does the same from a shell. Needs the ``app`` extra:
``pip install -e '.[app]'``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

APP = Path(__file__).with_name("app.py")
HOST = "127.0.0.1"
DEFAULT_PORT = 8501

# telemetry off, loopback only, no browser launch, no file watcher, no "Deploy" button
SETTINGS = {
    "browser.gatherUsageStats": "false",
    "server.address": HOST,
    "server.headless": "true",
    "server.fileWatcherType": "none",
    "client.toolbarMode": "viewer",
}


def free_port(start: int = DEFAULT_PORT, tries: int = 50) -> int:
    """The first port from ``start`` that nothing listens on at 127.0.0.1."""
    for port in range(start, start + tries):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((HOST, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {start}-{start + tries - 1} on {HOST}")


def command(port: int) -> list[str]:
    """The server command line."""
    cmd = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port)]
    for key, value in SETTINGS.items():
        cmd += [f"--{key}", value]
    return cmd


def environment(scenarios: str | os.PathLike | None = None) -> dict[str, str]:
    """The server's environment: the same settings as variables, and the scenarios folder it offers."""
    from sim.webapp.design import scenarios_folder

    env = dict(os.environ)
    for key, value in SETTINGS.items():
        section, name = key.split(".")
        snake = "".join(f"_{c}" if c.isupper() else c for c in name).upper()
        env[f"STREAMLIT_{section.upper()}_{snake}"] = value
    env["PBRSIM_SCENARIOS"] = str(Path(scenarios).resolve() if scenarios else scenarios_folder().resolve())
    return env


def launch(port: int | None = None, wait: bool = True, scenarios: str | os.PathLike | None = None,
           log=None) -> int | subprocess.Popen:
    """Start the app on http://127.0.0.1:PORT (default: the first free port from 8501).

    With ``wait`` (the command line), block until the server ends and return its exit code; Ctrl-C, SIGTERM or
    SIGHUP stop the server (and wait for it) and return 128 + the signal's number; the server also gets SIGTERM
    if this process dies without the chance to (Linux). Otherwise return the running process (end it with
    ``terminate()``)."""
    import importlib.util

    from sim.experiments.signals import exit_code, interrupt_on_signals

    if importlib.util.find_spec("streamlit") is None:
        raise SystemExit("the web app needs Streamlit: pip install -e '.[app]'")
    port = free_port() if port is None else int(port)
    env = environment(scenarios)
    popen = dict(cwd=APP.parent, env=env, stdout=log, stderr=subprocess.STDOUT if log is not None else None)
    if not wait:
        return subprocess.Popen(command(port), **popen)
    proc = None
    with interrupt_on_signals():
        try:
            proc = subprocess.Popen(command(port), preexec_fn=_dies_with_parent(), **popen)
            print(f"pbrsim app: http://{HOST}:{port}  (Ctrl-C to stop)", flush=True)
            return proc.wait()
        except KeyboardInterrupt as e:
            print("pbrsim app: stopping the server", file=sys.stderr, flush=True)
            code = exit_code(e)
        finally:
            if proc is not None:
                _stop(proc)
    return code


def _stop(proc: subprocess.Popen) -> None:
    """End the server and wait for it: SIGTERM, up to 10 s, then SIGKILL (also if interrupted meanwhile)."""
    from sim.experiments.signals import stop_processes

    while proc.poll() is None:
        try:
            stop_processes([proc], timeout=10)
        except KeyboardInterrupt:
            proc.kill()


def _dies_with_parent():
    """For ``Popen(preexec_fn=...)`` on Linux: the child gets SIGTERM when this thread's process ends (also by
    SIGKILL). None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes
        import signal

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    PR_SET_PDEATHSIG = 1

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)

    return preexec


__all__ = ["APP", "launch", "command", "free_port"]
