"""A real `assay synth serve` server on a free loopback port for the duration of a `with` block (server tests)."""
import threading
from contextlib import contextmanager

from assay.synth.server import ServeConfig, make_server


@contextmanager
def serving(backend, **kw):
    server = make_server(backend, ServeConfig(**{"port": 0, **kw}))
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
