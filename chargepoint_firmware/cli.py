"""The `chargepoint` command line.

chargepoint run --config station.toml     run the station (OCPP 2.0.1 agent + CHAdeMO)
chargepoint check-config --config FILE    validate a configuration and print it
chargepoint chademo-decode LOG            decode a CHAdeMO CAN log (CSV) to readable frames
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys

from chargepoint_firmware.settings import ConfigError, load_settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chargepoint", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the charging station")
    run.add_argument("--config", required=True, help="station TOML file (see station.toml)")
    check = commands.add_parser("check-config", help="validate a configuration")
    check.add_argument("--config", required=True)
    decode = commands.add_parser("chademo-decode", help="decode a CHAdeMO CAN log")
    decode.add_argument("log", help="CAN log (CSV)")
    # `chargepoint simulate` (station + simulated vehicle scenarios) comes with the next issue.
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "chademo-decode":
        try:
            from chargepoint_firmware.chademo.decode_cli import run as decode_run
        except ImportError:
            print("chargepoint: the CHAdeMO log decoder is not available", file=sys.stderr)
            return 2
        return int(decode_run(args.log, sys.stdout))
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"chargepoint: {exc}", file=sys.stderr)
        return 2
    if args.command == "check-config":
        print(json.dumps(settings.model_dump(mode="json"), indent=2))
        return 0
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from chargepoint_firmware.main import run_station

    try:
        return asyncio.run(run_station(settings))
    except ConfigError as exc:
        print(f"chargepoint: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
