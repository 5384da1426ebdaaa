"""Command line: `python -m serving.server` / `tft-serve`.

Flags follow `tensorflow_model_server` where one exists (dashes or underscores
both accepted):

    tft-serve --model_name translator --model_base_path exports/translator \
        --rest_api_port 8501 --port 8500

    python -m serving.server --model-name translator \
        --model-base-path exports/translator --rest-port 8501 --grpc-port 8500

    tft-serve --model-config-file models.config --enable-batching
"""

import argparse
import logging
import os
import sys


def build_parser():
    """Returns the argument parser of the server command."""
    parser = argparse.ArgumentParser(
        prog="tft-serve", description="Serve SavedModels over TF Serving's REST and gRPC APIs."
    )
    models = parser.add_argument_group("models")
    models.add_argument("--model-name", "--model_name", help="name of the single model to serve")
    models.add_argument(
        "--model-base-path",
        "--model_base_path",
        help="folder holding the model's int-named version folders",
    )
    models.add_argument(
        "--model-config-file",
        "--model_config_file",
        help="text ModelServerConfig: several models, version policies, labels",
    )
    network = parser.add_argument_group("network")
    network.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1; 0.0.0.0 for every interface)",
    )
    network.add_argument(
        "--rest-port",
        "--rest_api_port",
        type=int,
        default=8501,
        help="REST port (default 8501; 0 picks a free port; -1 disables REST)",
    )
    network.add_argument(
        "--grpc-port",
        "--port",
        type=int,
        default=8500,
        help="gRPC port (default 8500; 0 picks a free port; -1 disables gRPC)",
    )
    limits = parser.add_argument_group("limits")
    limits.add_argument(
        "--max-body-bytes",
        type=int,
        default=4 * 1024 * 1024,
        help="largest REST body / gRPC message (default 4 MiB); larger: 413 / "
        "RESOURCE_EXHAUSTED",
    )
    limits.add_argument(
        "--max-instances",
        type=int,
        default=1024,
        help="most rows in one request (default 1024); more: 400",
    )
    limits.add_argument(
        "--request-timeout-seconds",
        type=float,
        default=30.0,
        help="per-request deadline (default 30); exceeded: 504 / DEADLINE_EXCEEDED",
    )
    batching = parser.add_argument_group("batching")
    batching.add_argument(
        "--enable-batching",
        "--enable_batching",
        action="store_true",
        help="merge concurrent requests to the same signature into batches",
    )
    batching.add_argument(
        "--max-batch-size", type=int, default=32, help="rows per batch (default 32)"
    )
    batching.add_argument(
        "--batch-timeout-micros",
        type=int,
        default=1000,
        help="longest wait for a batch to fill (default 1000)",
    )
    batching.add_argument(
        "--num-batch-threads",
        type=int,
        default=None,
        help="batches running at once (default: --num-threads)",
    )
    runtime = parser.add_argument_group("runtime")
    runtime.add_argument(
        "--num-threads",
        type=int,
        default=os.cpu_count() or 1,
        help="threads running models (default: CPU count)",
    )
    runtime.add_argument(
        "--file-system-poll-wait-seconds",
        "--file_system_poll_wait_seconds",
        type=float,
        default=1.0,
        help="seconds between scans for new versions (default 1)",
    )
    runtime.add_argument(
        "--grace-seconds",
        type=float,
        default=30.0,
        help="time given to requests in flight on SIGTERM (default 30)",
    )
    runtime.add_argument("--log-level", default="INFO", help="Python logging level (default INFO)")
    return parser


def options_from_args(args):
    """Builds `ServerOptions` from parsed arguments.

    Raises:
        ValueError: for a missing or contradictory model choice or a bad limit.
    """
    if args.model_config_file and (args.model_name or args.model_base_path):
        raise ValueError(
            "Give either --model-config-file or --model-name/--model-base-path, not both."
        )
    if not args.model_config_file and not (args.model_name and args.model_base_path):
        raise ValueError("Give --model-name and --model-base-path, or --model-config-file.")
    from serving.server import config as config_lib
    from serving.server.batcher import BatchingOptions
    from serving.server.server import ServerOptions
    from serving.server.service import Limits

    if args.model_config_file:
        models = config_lib.load_model_config_file(args.model_config_file)
    else:
        models = config_lib.from_flags(args.model_name, args.model_base_path)
    batching = None
    if args.enable_batching:
        batching = BatchingOptions(
            max_batch_size=args.max_batch_size,
            batch_timeout_micros=args.batch_timeout_micros,
            num_batch_threads=args.num_batch_threads or args.num_threads,
        )
    return ServerOptions(
        models=models,
        host=args.host,
        rest_port=None if args.rest_port < 0 else args.rest_port,
        grpc_port=None if args.grpc_port < 0 else args.grpc_port,
        limits=Limits(
            max_body_bytes=args.max_body_bytes,
            max_instances=args.max_instances,
            deadline_seconds=args.request_timeout_seconds,
        ),
        batching=batching,
        num_threads=args.num_threads,
        poll_seconds=args.file_system_poll_wait_seconds,
        grace_seconds=args.grace_seconds,
    )


def main(argv=None):
    """Parses the command line and runs the server until SIGTERM."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        options = options_from_args(args)
    except (ValueError, OSError) as error:
        parser.error(str(error))
    from serving.server.server import run

    run(options)


if __name__ == "__main__":
    sys.exit(main())
