"""The ``earful`` command: one module per command group (classify, serve, batch, evaluate, build). Each
subcommand imports only what it needs, so ``earful classify`` starts without loading torch."""

from __future__ import annotations

import argparse
import json
import os
import sys

from earful.cli import batch, build, classify, evaluate, serve
from earful.cli.common import UsageError

# Never reach a model hub or send usage data, whatever the caller's environment says.
for _var, _value in (
    ("HF_HUB_OFFLINE", "1"),
    ("HF_DATASETS_OFFLINE", "1"),
    ("TRANSFORMERS_OFFLINE", "1"),
    ("BENTOML_DO_NOT_TRACK", "True"),
    ("TOKENIZERS_PARALLELISM", "false"),
):
    os.environ.setdefault(_var, _value)


__all__ = ["UsageError", "build_parser", "main"]


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean 'the user must fix something', shown without a traceback."""
    from earful.labelled import LabelledDataError
    from earful.models.bundle import BundleError
    from earful.tabular import TableError
    from earful.training.encoder import EncoderSourceError

    errors: list[type[BaseException]] = [
        UsageError,
        BundleError,
        EncoderSourceError,
        LabelledDataError,
        TableError,
        FileNotFoundError,
        FileExistsError,
    ]
    if "earful.training.trainer" in sys.modules:
        errors.append(sys.modules["earful.training.trainer"].TrainingError)
    return tuple(errors)


def _version() -> str:
    """earful's version, and the default model's where the checkout has one."""
    from earful import __version__
    from earful.models.bundle import BUNDLE_FILE, DEFAULT_BUNDLE

    try:
        info = json.loads((DEFAULT_BUNDLE / BUNDLE_FILE).read_text())
    except (OSError, ValueError):
        return f"earful {__version__}"
    return f"earful {__version__} (default model {info['name']} {info['version']})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="earful", description="Complaint type, sentiment, language and troll likelihood for social posts."
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    for group in (classify, serve, batch, evaluate, build):
        group.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        args.func(args)
    except KeyboardInterrupt:
        print("earful: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except _user_errors() as e:
        print(f"earful {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0
