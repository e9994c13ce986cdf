"""``qa-system`` command line.

Each command family lives in its own module with a ``register(commands, train, evaluate)``
function that adds argparse subcommands (and ``register_tune(tune)`` for ``qa-system tune ...``); handlers take ``(args, settings)`` and return an exit
code. Any ``QAError`` becomes one line on stderr and its ``exit_code``; JSON goes to stdout alone.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from qa_system.errors import QAError

# Modules that add subcommands; a module that is not there yet is skipped.
COMMAND_MODULES = (
    "qa_system.cli.graph_commands",
    "qa_system.cli.kge_commands",
    "qa_system.cli.qa_commands",
    "qa_system.cli.qa_tuning_commands",
    "qa_system.cli.ask_commands",
    "qa_system.cli.serve_commands",
    "qa_system.cli.review_commands",
    "qa_system.cli.extractor_commands",
    "qa_system.cli.ingest_commands",
    "qa_system.cli.entailment_commands",
    "qa_system.cli.validation_commands",
    "qa_system.cli.relation_commands",
)

log = logging.getLogger("qa_system.cli")


def emit_json(payload: Any) -> None:
    """Write one JSON object to stdout (the only thing a ``--json`` command prints there)."""

    sys.stdout.write(json.dumps(payload, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where there is nothing to show (None, a flag's False):
    those helps say in words what happens when the option is left out."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose help shows defaults; ``add_subparsers`` makes its subcommands of
    this class too, so every ``add_parser`` in the command modules gets the same formatter."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("qa-system")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="qa-system", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("--workspace", help="workspace folder (default $QA_WORKSPACE or ./qa-workspace)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logs on stderr")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    train = commands.add_parser("train", help="train a model").add_subparsers(dest="what", metavar="MODEL")
    evaluate = commands.add_parser("evaluate", help="evaluate a model").add_subparsers(dest="what", metavar="TASK")
    tune = commands.add_parser("tune", help="tune decision thresholds and weights on dev").add_subparsers(dest="what", metavar="WHAT")
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name != module_name:
                raise
            continue
        module.register(commands, train, evaluate)
        if hasattr(module, "register_tune"):
            module.register_tune(tune)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    handler = getattr(args, "func", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        from qa_system.config import load_settings

        overrides = {"workspace": args.workspace} if args.workspace else {}
        settings = load_settings(**overrides)
        return int(handler(args, settings) or 0)
    except QAError as e:
        sys.stderr.write(f"error: {e}\n")
        return e.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
