"""``qa-system`` command line.

Each command family lives in its own module with a ``register(commands, train, evaluate)``
function that adds argparse subcommands (and ``register_tune(tune)`` for ``qa-system tune ...``); handlers take ``(args, settings)`` and return an exit
code. Any ``QAError`` becomes one line on stderr and its ``exit_code``; JSON goes to stdout alone.

Quiet by default (``quiet_logging``): stderr carries warnings and errors only; our own long commands
(``LONG_COMMANDS``: training, evaluation, imports, ingest, serve) keep their progress logs at INFO
and their tqdm bars. ``-v`` (INFO) / ``-vv`` (DEBUG) or ``QA_LOG_LEVEL`` turn every library's logs,
progress bars and deprecation warnings back on.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import warnings
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
    "qa_system.cli.maintain_commands",
    "qa_system.cli.user_commands",
    "qa_system.cli.extractor_commands",
    "qa_system.cli.ingest_commands",
    "qa_system.cli.entailment_commands",
    "qa_system.cli.validation_commands",
    "qa_system.cli.relation_commands",
)

log = logging.getLogger("qa_system.cli")

# Our packages: their INFO logs are progress in the long commands below.
OWN_LOGGERS = ("qa_system", "graph", "retrievers", "evaluation", "ui")
# Commands whose own INFO logs (and tqdm bars) are wanted progress; every other command (ask,
# neighbors, stats, cypher, review...) prints its result and real warnings only.
LONG_COMMANDS = frozenset({"train", "evaluate", "tune", "calibrate", "import-kg", "ingest", "serve"})
# Third-party modules whose FutureWarnings/DeprecationWarnings are for their callers' maintainers,
# not for someone asking a question (transformers' ``is_gradient_checkpointing``, ...).
NOISY_MODULES = ("transformers", "sentence_transformers", "huggingface_hub", "torch", "peft", "faiss", "onnxruntime", "spacy")


def quiet_logging(verbosity: int | None = None, level: str | None = None, command: str | None = None) -> int:
    """Set up stderr logging for one CLI run; returns the root level.

    ``verbosity`` counts ``-v`` (1: INFO, 2+: DEBUG) and wins over ``level`` (``QA_LOG_LEVEL``). With
    neither, the root logger (every library) is at WARNING, and our own loggers at INFO for a
    ``LONG_COMMANDS`` command. Unless INFO or below was asked for, third-party progress bars
    (transformers' weight loading, huggingface_hub), transformers' own logger and the known
    third-party Future/DeprecationWarnings are off. Runs before the heavy libraries are imported
    (their switches are environment variables read at import), and switches them off directly
    when they already are (a test calling ``main``)."""

    if verbosity:
        root_level = logging.DEBUG if verbosity > 1 else logging.INFO
    elif level:
        root_level = logging.getLevelName(level.upper())
    else:
        root_level = logging.WARNING
    logging.basicConfig(level=root_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger().setLevel(root_level)
    own_level = logging.INFO if root_level > logging.INFO and command in LONG_COMMANDS else logging.NOTSET
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(own_level)
    if root_level <= logging.INFO:
        return root_level
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # "Could not load library with AVX512 support ..."
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # "LOAD REPORT" tables, and "Loading weights" bars below
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        transformers_logging.set_verbosity_error()
        transformers_logging.disable_progress_bar()
    for module in NOISY_MODULES:
        for category in (FutureWarning, DeprecationWarning):
            warnings.filterwarnings("ignore", category=category, module=module)
    return root_level


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
    parser.add_argument("-v", "--verbose", action="count",
                        help="library logs, progress bars and warnings on stderr (-v INFO, -vv DEBUG; default $QA_LOG_LEVEL, "
                             "else warnings only, plus progress of training, imports and ingest)")
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
    handler = getattr(args, "func", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        from qa_system.config import load_settings

        overrides = {"workspace": args.workspace} if args.workspace else {}
        settings = load_settings(**overrides)
        quiet_logging(args.verbose, settings.log_level, args.command)  # before the handler imports anything heavy
        return int(handler(args, settings) or 0)
    except QAError as e:
        sys.stderr.write(f"error: {e}\n")
        return e.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
