"""``obliviate serve``: bind the port, load and replay, then run uvicorn until stopped.

The socket is bound before the model loads, so a port in use is a clear error at once
(and nobody can take the port while the model loads).
"""

from __future__ import annotations

import errno
import logging
import socket
from pathlib import Path

import uvicorn

from obliviate.errors import UserError
from obliviate.serve.app import create_app
from obliviate.serve.auth import Authenticator, load_tokens
from obliviate.serve.generation import Batcher
from obliviate.serve.jobs import JobRunner
from obliviate.serve.ledger import Ledger
from obliviate.serve.service import DeletionService, ServeConfig

log = logging.getLogger(__name__)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; UserError if the port is taken or the host is wrong."""
    if not 0 <= port <= 65535:
        raise UserError(f"--port must be 0..65535, got {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UserError(f"--host {host!r} is not an address of this machine ({exc.strerror})") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise UserError(f"port {port} on {host} is in use: stop what listens there or choose --port") from None
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def serve(config: ServeConfig, log_level: str = "warning", announce=print) -> None:
    Ledger(config.ledger).close()   # a bad ledger path is an error before anything is loaded
    authenticator = Authenticator(load_tokens(config.tokens))
    sock = bind(config.host, config.port)
    try:
        service = DeletionService(config)
        batcher = Batcher(service.snapshot, max_batch=config.max_batch)
        runner = JobRunner(service.next_job, service.finish, timeout_s=config.job_timeout_s)
        app = create_app(service, batcher, authenticator, runner.wake)
        batcher.start()
        if not service.is_sink:
            runner.start()
        host, port = sock.getsockname()[:2]
        announce(f"serving {service.name} ({'sink' if service.is_sink else 'dense'} model, hash "
                 f"{service.served.model_hash}) on http://{host}:{port}; ledger {Path(config.ledger)}"
                 + ("" if authenticator.has_admin else "; no admin token: deletions are refused"))
        if any(service.recovered.get(k) for k in ("requeued", "failed")):
            announce(f"recovered from an interrupted run: re-queued {service.recovered['requeued']}, "
                     f"failed {service.recovered['failed']}")
        server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, access_log=False, timeout_graceful_shutdown=5))
        try:
            server.run(sockets=[sock])
        finally:
            runner.stop()
            batcher.stop()
            service.close()
    finally:
        sock.close()
