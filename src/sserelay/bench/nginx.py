"""nginx as a pure pass-through proxy: the practical floor of what relaying bytes costs.

One worker process, so its CPU compares with one Python process's. Everything nginx writes
lives in a temporary prefix directory; nothing of the system's nginx set-up is touched.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from sserelay.testing.procs import ServerProcess, free_port

__all__ = ["NginxUnavailable", "find_nginx", "nginx_conf", "run_nginx"]

# Enough for the largest ramp step: each stream holds a client and an upstream connection.
_WORKER_CONNECTIONS = 8192


class NginxUnavailable(RuntimeError):
    """nginx is not installed."""


def find_nginx() -> str:
    # Debian installs it in /usr/sbin, which a non-root PATH often lacks.
    path = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if path is None:
        raise NginxUnavailable("nginx is not installed (Debian: apt-get install nginx)")
    return path


def nginx_conf(prefix: Path, listen_port: int, upstream_port: int) -> str:
    temp = {name: prefix / name for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")}
    return f"""\
worker_processes 1;
worker_rlimit_nofile {_WORKER_CONNECTIONS * 2};
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections {_WORKER_CONNECTIONS}; }}
http {{
    access_log off;
    client_body_temp_path {temp["client_body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
    upstream fake_openai {{
        server 127.0.0.1:{upstream_port};
        keepalive 1024;  # reuse upstream connections, as a tuned deployment would
    }}
    server {{
        listen 127.0.0.1:{listen_port} backlog=4096;
        location / {{
            proxy_pass http://fake_openai;
            proxy_http_version 1.1;
            proxy_set_header Connection "";  # keep-alive to the upstream
            # Pass each chunk on as it arrives: no response buffering.
            proxy_buffering off;
            chunked_transfer_encoding on;
        }}
    }}
}}
"""


@contextlib.contextmanager
def run_nginx(upstream_port: int) -> Iterator[ServerProcess]:
    """nginx (master + 1 worker) proxying 127.0.0.1:<its port> to the upstream."""
    executable = find_nginx()
    with tempfile.TemporaryDirectory(prefix="sserelay-bench-nginx-") as tmp:
        prefix = Path(tmp)
        port = free_port()
        (prefix / "nginx.conf").write_text(nginx_conf(prefix, port, upstream_port))
        # -e: the start-up error log too, before the config's error_log applies.
        argv = [executable, "-p", str(prefix), "-c", "nginx.conf", "-e", str(prefix / "error.log")]
        with ServerProcess(argv, port=port) as server:
            yield server
