"""A TF-Serving-compatible model server: REST + gRPC, versions, dynamic batching.

Public API (imported on first use, so `python -m serving.server --help` stays fast):
    ServerOptions, serve, run          -- run the server (server.py)
    ModelSpec, VersionPolicy,
    parse_model_config, load_model_config_file, from_flags -- which models (config.py)
    BatchingOptions                    -- dynamic batching (batcher.py)
    Limits                             -- body size, instances, deadline (service.py)
    ModelManager                       -- versions, polling, status (manager.py)
"""

import importlib

_EXPORTS = {
    "BatchingOptions": "serving.server.batcher",
    "Limits": "serving.server.service",
    "ModelManager": "serving.server.manager",
    "ModelSpec": "serving.server.config",
    "ServerOptions": "serving.server.server",
    "VersionPolicy": "serving.server.config",
    "from_flags": "serving.server.config",
    "load_model_config_file": "serving.server.config",
    "parse_model_config": "serving.server.config",
    "run": "serving.server.server",
    "serve": "serving.server.server",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'serving.server' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
