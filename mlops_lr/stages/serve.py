"""Stage ``serve``: the float or a quantized model over HTTP (mlops_lr.serve on uvicorn)."""

from __future__ import annotations

import contextlib
import gc
import signal
import socket
from collections.abc import Iterator
from typing import Any

from mlops_lr import tracking
from mlops_lr.config import Config, ServeConfig
from mlops_lr.exceptions import ArtifactError, ConfigError
from mlops_lr.predictor import saved_samples

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def run(config: Config) -> None:
    """Verify and load the model, listen on ``serve.host:serve.port`` and serve until
    SIGTERM/SIGINT, letting in-flight requests finish (``serve.shutdown_timeout``)."""
    try:
        import uvicorn

        from mlops_lr.serve import create_app
    except ModuleNotFoundError as error:
        raise ConfigError(
            f"stage=serve needs {error.name}: pip install 'mlops-lr[serve]' "
            "(or -r requirements-serve.txt)"
        ) from None
    settings = config.serve
    artifacts_dir = config.paths.artifacts_dir
    predictor = tracking.load_model(config, settings.model)
    app = create_app(
        predictor,
        max_rows=settings.max_rows,
        max_body_bytes=settings.max_body_bytes,
        example=_example_row(artifacts_dir, predictor.feature_names),
        model_name=settings.model_name,
        model_version=settings.model_version
        or str(predictor.details.get("registered_version", "1")),
    )
    listener = listen(settings)
    host, port = listener.getsockname()[:2]
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    details = predictor.details
    served = repr(predictor.name)
    if "registry_uri" in details:  # a registered version: which one the alias points at
        served = (
            f"{details['registry_uri']} (version {details['registered_version']}, saved as "
            f"{details['source_tag']!r})"
        )
    print(f"Serving model {served} at {url} (API docs: {url}/docs)", flush=True)
    server = _server_class(uvicorn, app)(
        uvicorn.Config(
            app,
            log_level=settings.log_level,
            access_log=settings.access_log,
            timeout_graceful_shutdown=settings.shutdown_timeout,
            server_header=False,
        )
    )
    # Requests allocate many short-lived objects; a full collection would otherwise walk every
    # object of numpy, FastAPI and pydantic again and again (the latency tail). They live as
    # long as the server, so exempt them from collection.
    gc.collect()
    gc.freeze()
    server.run(sockets=[listener])
    if not server.started:
        raise ConfigError(f"the server at {url} did not start (see the log above)")


def _server_class(uvicorn: Any, app: Any) -> type:
    """uvicorn's Server, except that SIGINT/SIGTERM end the run normally (exit 0) once
    in-flight requests are done. uvicorn re-raises the signal instead, which would end a
    Ctrl-C in a KeyboardInterrupt traceback and a ``docker stop`` in exit code 143. From the
    signal on, the readiness probes of ``app`` answer 503."""

    class GracefulServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            app.state.ready = False
            super().handle_exit(sig, frame)

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in STOP_SIGNALS}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return GracefulServer


def listen(settings: ServeConfig) -> socket.socket:
    """A listening TCP socket on ``settings.host:settings.port``.

    Raises
    ------
    ConfigError
        The host does not resolve or the address cannot be bound (in use, not local).
    """
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(
            settings.host, settings.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as error:
        raise ConfigError(f"serve.host={settings.host!r} does not resolve: {error}") from None
    listener = socket.socket(family, kind, protocol)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(address)
        listener.listen(2048)
    except OSError as error:
        listener.close()
        raise ConfigError(
            f"cannot listen on {settings.host}:{settings.port}: {error.strerror} "
            "(choose another serve.port, or 0 for any free one)"
        ) from None
    return listener


def _example_row(artifacts_dir: str, feature_names: tuple[str, ...]) -> list[Any] | None:
    """The first saved test row, as the OpenAPI example (none if there is no such row for
    these features)."""
    try:
        return saved_samples(artifacts_dir, feature_names)[0]
    except ArtifactError:
        return None
