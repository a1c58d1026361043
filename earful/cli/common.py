"""What the command modules share: the usage error and the bundle options."""

from __future__ import annotations

import argparse


class UsageError(Exception):
    """Bad command-line input; printed as one line, exit status 2."""


def bundle_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bundle", help="bundle folder (default: the shipped models/default)")
    p.add_argument("--variant", choices=("int8", "fp32"), default="int8", help="which ONNX model to run (default int8)")
    p.add_argument(
        "--threads", type=int, help="cores to use: onnxruntime runs at a time, one thread each (default: all cores)"
    )
