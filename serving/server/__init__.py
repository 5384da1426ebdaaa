"""A TF-Serving-compatible model server: REST + gRPC, versions, dynamic batching.

Public API:
    ServerOptions, serve, run          -- run the server (see server.py)
    ModelSpec, VersionPolicy,
    parse_model_config, load_model_config_file, from_flags -- which models (config.py)
    BatchingOptions                    -- dynamic batching (batcher.py)
    Limits                             -- body size, instances, deadline (service.py)
    ModelManager                       -- versions, polling, status (manager.py)
"""

from serving.server.batcher import BatchingOptions
from serving.server.config import (
    ModelSpec,
    VersionPolicy,
    from_flags,
    load_model_config_file,
    parse_model_config,
)
from serving.server.manager import ModelManager
from serving.server.server import ServerOptions, run, serve
from serving.server.service import Limits

__all__ = [
    "BatchingOptions",
    "Limits",
    "ModelManager",
    "ModelSpec",
    "ServerOptions",
    "VersionPolicy",
    "from_flags",
    "load_model_config_file",
    "parse_model_config",
    "run",
    "serve",
]
