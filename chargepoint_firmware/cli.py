"""The `chargepoint` command line.

chargepoint run --config station.toml     run the station (OCPP 2.0.1 agent + CHAdeMO)
chargepoint check-config --config FILE    validate a configuration and print it
chargepoint chademo-decode LOG            decode a CHAdeMO CAN log to JSON lines, one per frame
chargepoint chademo-replay LOG...         replay real logs through our charger state machine
chargepoint simulate ...                  N simulated stations against any CSMS (--help)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys

from chargepoint_firmware.settings import ConfigError, load_settings, redact

SAMPLE_CONFIG = "tests/data/agent/station.toml"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chargepoint", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the charging station")
    run.add_argument(
        "--config", required=True, help=f"station TOML file (documented sample: {SAMPLE_CONFIG})"
    )
    run.add_argument(
        "--ocpp-versions",
        help="subprotocols to offer, preferred first, e.g. 2.1,2.0.1 (default: the config's "
        "ocpp_versions, else 2.0.1)",
    )
    check = commands.add_parser("check-config", help="validate a configuration")
    check.add_argument("--config", required=True, help="station TOML file")
    decode = commands.add_parser("chademo-decode", help="decode a CHAdeMO CAN log")
    decode.add_argument("log", help="candump text or the CSV log layout; '-' reads stdin")
    replay = commands.add_parser(
        "chademo-replay", help="replay CHAdeMO logs through our charger state machine"
    )
    replay.add_argument("logs", nargs="+", help="GVRET/SavvyCAN CSV logs")
    # Listed for --help only: `main` hands everything after `simulate` to its own parser.
    commands.add_parser(
        "simulate", help="run N simulated stations against a CSMS (see --help)", add_help=False
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments and arguments[0] == "simulate":
        from chargepoint_firmware.simulate import cli_main as simulate_main

        try:
            return simulate_main(arguments[1:])
        except SystemExit as done:  # its argparse: --help, usage errors
            return done.code if isinstance(done.code, int) else 0
    args = _parser().parse_args(arguments)
    if args.command == "chademo-decode":
        from chargepoint_firmware.chademo.decode_cli import run as decode_run

        return int(decode_run(args.log, sys.stdout))
    if args.command == "chademo-replay":
        from chargepoint_firmware.chademo.replay_cli import run_cli as replay_run

        return replay_run(args.logs, sys.stdout, sys.stderr)
    overrides = {}
    if getattr(args, "ocpp_versions", None):
        overrides["ocpp_versions"] = args.ocpp_versions
    try:
        settings = load_settings(args.config, **overrides)
    except ConfigError as exc:
        print(f"chargepoint: {exc}", file=sys.stderr)
        return 2
    if args.command == "check-config":
        print(json.dumps(redact(settings.model_dump(mode="json")), indent=2))
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
