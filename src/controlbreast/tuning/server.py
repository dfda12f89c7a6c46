"""``controlbreast tune-server``: Optuna's gRPC proxy in front of an RDB storage.

Workers elsewhere join with ``--storage grpc://HOST:PORT``. It binds 127.0.0.1 unless told
otherwise: the proxy has no authentication, so exposing it is a decision for the network's owner.
Heartbeats and the trial quota do not pass through the proxy (``GrpcStorageProxy`` has neither): a
worker killed behind it leaves its trial RUNNING until ``optuna.storages.fail_stale_trials`` is run
on an RDB connection, and each worker may run one trial more than the study needs.
"""

from __future__ import annotations

import optuna

from controlbreast.errors import ConfigError
from controlbreast.tuning.study import rdb_storage


def serve(storage: str, host: str = "127.0.0.1", port: int = 13000) -> None:
    """Serve ``storage`` on ``host:port`` until interrupted (``get_storage``: the cache matters)."""
    try:
        backend = optuna.storages.get_storage(rdb_storage(storage, "--storage"))
    except ConfigError:
        raise
    except Exception as error:
        raise ConfigError(f"--storage: cannot open {storage!r}: {type(error).__name__}: {error}") from None
    print(f"tune-server: serving {storage} on grpc://{host}:{port}", flush=True)
    optuna.storages.run_grpc_proxy_server(backend, host=host, port=port)
