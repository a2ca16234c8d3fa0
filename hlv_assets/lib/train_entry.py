"""Training entry point: ``python -m hlv_assets.lib.train_entry --config cfg.json --out DIR``.

Runs one soft-label fine-tuning (or, with ``--zero-shot`` / ``"mode": "zero_shot"``, one evaluation of the
untrained encoder) as described by a `hlv_assets.lib.finetune.FinetuneConfig` JSON file, and writes
``DIR/checkpoint/`` (safetensors), ``DIR/metrics.json`` and ``DIR/predictions.json``.

Needs only torch, transformers, safetensors and numpy (it runs on a stock GPU image without Dagster).
Progress: when ``dagster_pipes`` is importable and a Pipes context is present (launched by a Dagster
Pipes client), events go to the Pipes log, the final summary is sent as a custom message and, for a
single-asset step, reported as the asset's materialization metadata; the config may then come from the
Pipes extra ``finetune_config`` (a dict) and the output folder from ``out_dir``. Otherwise every event is
printed to stdout as one JSON line. The hub is never contacted (``HF_HUB_OFFLINE=1`` unless set).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from hlv_assets.lib.errors import HLVError
from hlv_assets.lib.finetune import FinetuneConfig, run_finetune


def _print_reporter(event: dict[str, Any]) -> None:
    print(json.dumps(event, default=str), flush=True)


def _pipes_present() -> bool:
    try:
        import dagster_pipes
    except ImportError:
        return False
    if os.environ.get(dagster_pipes.DAGSTER_PIPES_CONTEXT_ENV_VAR):
        return True
    return any(a.startswith(dagster_pipes.DAGSTER_PIPES_CONTEXT_CLI_ARGUMENT) for a in sys.argv[1:])


@contextlib.contextmanager
def _pipes_context() -> Iterator[Any]:
    if not _pipes_present():
        yield None
        return
    from dagster_pipes import open_dagster_pipes

    with open_dagster_pipes() as pipes:
        yield pipes


def _pipes_reporter(pipes: Any):
    def report(event: dict[str, Any]) -> None:
        pipes.log.info(json.dumps(event, default=str))
        if event.get("event") == "done":
            pipes.report_custom_message({k: v for k, v in event.items() if k != "event"})
            if pipes.is_asset_step and len(pipes.asset_keys) == 1:
                metadata = {k: v for k, v in event.items() if k != "event" and v is not None}
                pipes.report_asset_materialization(metadata=metadata)

    return report


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m hlv_assets.lib.train_entry", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--config", help="FinetuneConfig JSON file (or the Pipes extra finetune_config)")
    parser.add_argument("--out", help="output folder (or the Pipes extra out_dir)")
    parser.add_argument("--zero-shot", action="store_true", help="evaluate the untrained encoder only")
    parser.add_argument("--device", help="override the config's device (auto/cpu/cuda)")
    args, _unknown = parser.parse_known_args(argv)  # Pipes may add its own --dagster-pipes-* arguments
    return args


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    args = _parse(argv)
    with _pipes_context() as pipes:
        extras = dict(pipes.extras) if pipes is not None else {}
        if args.config:
            data = json.loads(open(args.config, encoding="utf-8").read())
        elif "finetune_config" in extras:
            data = dict(extras["finetune_config"])
        else:
            print("a config is required: --config FILE (or the Pipes extra finetune_config)", file=sys.stderr)
            return 2
        out = args.out or extras.get("out_dir")
        if not out:
            print("an output folder is required: --out DIR (or the Pipes extra out_dir)", file=sys.stderr)
            return 2
        if args.zero_shot:
            data["mode"] = "zero_shot"
        if args.device:
            data["device"] = args.device
        try:
            config = FinetuneConfig.from_dict(data)
        except (TypeError, ValueError) as exc:
            print(f"invalid config: {exc}", file=sys.stderr)
            return 2
        try:
            from transformers.utils import logging as hf_logging

            hf_logging.set_verbosity_error()
            hf_logging.disable_progress_bar()
        except ImportError:  # pragma: no cover
            pass
        reporter = _pipes_reporter(pipes) if pipes is not None else _print_reporter
        try:
            run_finetune(config, out, reporter=reporter)
        except HLVError as exc:  # a refused input (e.g. an unmapped head): one line, no traceback
            print(str(exc), file=sys.stderr)
            return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
