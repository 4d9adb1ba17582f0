"""The `csms` command line (argparse).

    csms serve [--ocpp-port 9000 --api-port 8000 --database-url ... every setting]
    csms db upgrade [REV] | csms db downgrade REV
    csms station add ID --password PW [--security-profile 1|2|3] [--boot-policy ...]
    csms station list [--json]
    csms site add ID --name NAME [--nmi --lfdi --sfdi --pin --csip --stations A,B]
    csms site list|show ID [--json] | site update ID [fields] | site delete ID
    csms token create NAME [--scope read|operate|admin]   (the token alone on the last line)
    csms token revoke NAME
    csms token list [--json]
    csms id-token add TOKEN [--type ISO14443]   (a driver's token: stations may charge with it)
    csms id-token remove TOKEN [--type ...] | csms id-token list [--json]
    csms v2g ...                (delegated to csms.v2g_cli)
    csms demo [--stations 3] [--speed 360] [--duration S]   (CSMS + simulated V2X stations;
                                                            package v2g_demo)

Every setting comes from a flag or a `CSMS_*` environment variable (flags win); invalid values
stop the command with exit status 2 and a message naming the field.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from csms import cli_sites
from csms.cli_common import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    SettingsInvalid,
    add_settings_flags,
    load_settings,
    print_json,
    run_admin,
    run_async,
)
from csms.services.password_check import PasswordKeyInvalid
from csms.services.redaction import redact_url

# Commands ---------------------------------------------------------------------------------------


def _cmd_serve(args: argparse.Namespace) -> int:
    import csms.app as app

    settings = load_settings(args)
    return run_async(lambda: app.serve(settings))


def _cmd_db(args: argparse.Namespace) -> int:
    from csms.persistence import migrate
    from csms.persistence.unreachable import naming_the_database

    settings = load_settings(args)
    with naming_the_database(settings.database_url):
        if args.db_command == "upgrade":
            migrate.upgrade(settings.database_url, args.revision)
            print(f"database upgraded to {args.revision}")
        else:
            migrate.downgrade(settings.database_url, args.revision)
            print(f"database downgraded to {args.revision}")
    return EXIT_OK


def _cmd_station(args: argparse.Namespace) -> int:
    import csms.cli_admin as admin

    settings = load_settings(args)
    if args.station_command == "add":
        station = run_admin(
            settings,
            lambda: admin.add_station(
                settings,
                args.station_id,
                password=args.password,
                security_profile=args.security_profile,
                boot_policy=args.boot_policy,
                ocpp_versions=args.ocpp_versions,
            ),
        )
        print(
            f"station {station.id} added (security profile {int(station.security_profile)}, "
            f"boot policy {station.boot_policy}, OCPP versions {_versions_text(station)})"
        )
        return EXIT_OK
    if args.station_command == "update":
        station = run_admin(
            settings, lambda: admin.update_station(settings, args.station_id, args.ocpp_versions)
        )
        print(f"station {station.id}: OCPP versions {_versions_text(station)}")
        return EXIT_OK
    stations = run_admin(settings, lambda: admin.list_stations(settings))
    if args.json:
        print_json([dataclasses.asdict(station) for station in stations])
        return EXIT_OK
    print(f"{'ID':<24} {'PROFILE':>7} {'BOOT POLICY':<12} {'STATUS':<10} {'OCPP':<6} VENDOR/MODEL")
    for station in stations:
        vendor = "/".join(part for part in (station.vendor_name, station.model) if part)
        version = station.ocpp_version.label if station.ocpp_version else "-"
        print(
            f"{station.id:<24} {int(station.security_profile):>7} {station.boot_policy!s:<12} "
            f"{station.registration_status!s:<10} {version:<6} {vendor}"
        )
    return EXIT_OK


def _versions_text(station: Any) -> str:
    versions = station.ocpp_versions
    return ",".join(v.value for v in versions) if versions else "global setting"


def _ocpp_versions_arg(text: str) -> list[str]:
    """--ocpp-versions "2.1,2.0.1" (in preference order); "global": the global setting."""
    from csms.domain.ocpp_versions import parse_versions

    if text.strip().lower() == "global":
        return []
    try:
        return [v.value for v in parse_versions(text)]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _cmd_token(args: argparse.Namespace) -> int:
    import csms.cli_admin as admin
    from csms.domain.models import ApiScope

    settings = load_settings(args)
    if args.token_command == "create":
        created = run_admin(
            settings, lambda: admin.create_api_token(settings, args.name, ApiScope(args.scope))
        )
        print(
            f"API token '{created.token.name}' (scope {created.token.scope}) created; "
            "it is shown only once:"
        )
        print(created.plaintext)
        return EXIT_OK
    if args.token_command == "revoke":
        revoked = run_admin(settings, lambda: admin.revoke_api_token(settings, args.name))
        if not revoked:
            print(f"csms: no active API token named '{args.name}'", file=sys.stderr)
            return EXIT_FAILURE
        print(f"API token '{args.name}' revoked")
        return EXIT_OK
    tokens = run_admin(settings, lambda: admin.list_api_tokens(settings))
    if args.json:
        # Names, scopes and dates only: a token's secret is never stored, let alone printed.
        print_json(
            [
                {
                    "name": token.name,
                    "scope": token.scope,
                    "created_at": token.created_at,
                    "revoked_at": token.revoked_at,
                    "revoked": token.revoked,
                }
                for token in tokens
            ]
        )
        return EXIT_OK
    print(f"{'NAME':<32} {'SCOPE':<8} {'CREATED':<33} REVOKED")
    for token in tokens:
        revoked_at = token.revoked_at.isoformat() if token.revoked_at else "-"
        print(
            f"{token.name:<32} {token.scope!s:<8} {token.created_at.isoformat():<33} {revoked_at}"
        )
    return EXIT_OK


def _cmd_id_token(args: argparse.Namespace) -> int:
    import csms.cli_admin as admin

    settings = load_settings(args)
    if args.id_token_command == "add":
        token = run_admin(settings, lambda: admin.add_id_token(settings, args.id_token, args.type))
        print(f"idToken {token.id_token} ({token.type}) added, status {token.status}")
        return EXIT_OK
    if args.id_token_command == "remove":
        run_admin(settings, lambda: admin.remove_id_token(settings, args.id_token, args.type))
        print(f"idToken {args.id_token} ({args.type}) removed")
        return EXIT_OK
    tokens = run_admin(settings, lambda: admin.list_id_tokens(settings))
    if args.json:
        print_json([dataclasses.asdict(token) for token in tokens])
        return EXIT_OK
    print(f"{'ID TOKEN':<36} {'TYPE':<16} {'STATUS':<10} EXPIRES")
    for token in tokens:
        expires = token.expires_at.isoformat() if token.expires_at else "-"
        print(f"{token.id_token:<36} {token.type:<16} {token.status!s:<10} {expires}")
    return EXIT_OK


def _cmd_v2g(argv: list[str]) -> int:
    try:
        module: types.ModuleType = importlib.import_module("csms.v2g_cli")
    except ModuleNotFoundError as error:
        if error.name != "csms.v2g_cli":
            raise
        print(
            "csms: the 'v2g' commands are not installed in this build (csms.v2g_cli missing)",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    main_function = typing.cast(Callable[[list[str]], int | None], module.main)
    try:
        return int(main_function(argv) or 0)
    except SystemExit as exit_request:  # argparse inside the v2g CLI (--help, usage errors)
        code = exit_request.code
        return code if isinstance(code, int) else (0 if code is None else EXIT_FAILURE)


def _cmd_demo(args: argparse.Namespace) -> int:
    # The demo runs both products, so it sits above them in its own package (v2g_demo); this
    # lazy import is the CSMS's only way into it (tests/unit/test_import_rules.py allows it).
    from v2g_demo.run import DemoOptions
    from v2g_demo.run import main as demo_main

    return demo_main(
        DemoOptions(
            stations=args.stations,
            speed=args.speed,
            duration_s=args.duration,
            data_dir=args.data_dir,
            api_port=args.api_port,
            ocpp_port=args.ocpp_port,
            live=False if args.plain else None,
        )
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="csms", description="OCPP 2.0.1 CSMS for bidirectional (V2G) charging"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the OCPP server and the REST API",
        description="Run the OCPP server and the REST API (migrating the database first). "
        "Every setting below is a flag or a CSMS_<NAME> environment variable; flags win.",
    )
    add_settings_flags(serve)
    serve.set_defaults(handler=_cmd_serve)

    db = commands.add_parser("db", help="database migrations")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = db_commands.add_parser("upgrade", help="migrate up (default: to the newest)")
    upgrade.add_argument("revision", nargs="?", default="head")
    downgrade = db_commands.add_parser("downgrade", help="migrate down to REV ('base': empty)")
    downgrade.add_argument("revision")
    for sub in (upgrade, downgrade):
        add_settings_flags(sub, ["database_url"])
    db.set_defaults(handler=_cmd_db)

    station = commands.add_parser("station", help="charging stations")
    station_commands = station.add_subparsers(
        dest="station_command", required=True, metavar="ACTION"
    )
    add = station_commands.add_parser("add", help="register a station")
    add.add_argument("station_id", metavar="ID")
    add.add_argument("--password", help="Basic-auth password (16-40 characters)")
    add.add_argument("--security-profile", type=int, choices=(1, 2, 3), default=1)
    add.add_argument(
        "--boot-policy", choices=("Accepted", "Pending", "Rejected"), default="Accepted"
    )
    versions_help = (
        "OCPP versions this station may use, in preference order (e.g. 2.1,2.0.1); "
        "'global' or absent: the global setting --ocpp-versions / CSMS_OCPP_VERSIONS"
    )
    add.add_argument("--ocpp-versions", type=_ocpp_versions_arg, help=versions_help)
    update = station_commands.add_parser("update", help="change a station's OCPP versions")
    update.add_argument("station_id", metavar="ID")
    update.add_argument(
        "--ocpp-versions", type=_ocpp_versions_arg, required=True, help=versions_help
    )
    listing = station_commands.add_parser("list", help="list stations")
    listing.add_argument("--json", action="store_true", help="print a JSON array")
    for sub in (add, update, listing):
        add_settings_flags(sub, ["database_url"])
    station.set_defaults(handler=_cmd_station)

    cli_sites.add_parser(commands)

    token = commands.add_parser("token", help="REST API bearer tokens")
    token_commands = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    create = token_commands.add_parser("create", help="create a token (printed once)")
    create.add_argument("name")
    # admin by default: the first token has to be able to create stations and further
    # (narrower) tokens, and whoever runs this already holds the database.
    create.add_argument(
        "--scope",
        choices=("read", "operate", "admin"),
        default="admin",
        help="read: GET only; operate: + commands, V2G plans/dispatch, prices; "
        "admin: + stations, tokens, tariffs, vehicles, credentials (default admin)",
    )
    revoke = token_commands.add_parser("revoke", help="revoke a token")
    revoke.add_argument("name")
    token_list = token_commands.add_parser("list", help="list tokens")
    token_list.add_argument("--json", action="store_true", help="print a JSON array")
    for sub in (create, revoke, token_list):
        add_settings_flags(sub, ["database_url"])
    token.set_defaults(handler=_cmd_token)

    id_token = commands.add_parser(
        "id-token", help="drivers' idTokens (RFID cards, app ids) stations may charge with"
    )
    id_token_commands = id_token.add_subparsers(
        dest="id_token_command", required=True, metavar="ACTION"
    )
    id_add = id_token_commands.add_parser("add", help="accept a driver's idToken")
    id_remove = id_token_commands.add_parser("remove", help="forget a driver's idToken")
    for sub in (id_add, id_remove):
        sub.add_argument("id_token", metavar="TOKEN", help="the idToken (1-36 characters)")
        sub.add_argument(
            "--type", default="ISO14443", help="idToken type (default ISO14443: an RFID card)"
        )
    id_list = id_token_commands.add_parser("list", help="list idTokens")
    id_list.add_argument("--json", action="store_true", help="print a JSON array")
    for sub in (id_add, id_remove, id_list):
        add_settings_flags(sub, ["database_url"])
    id_token.set_defaults(handler=_cmd_id_token)

    commands.add_parser("v2g", help="V2G planning tools (see csms v2g --help)", add_help=False)

    demo = commands.add_parser(
        "demo", help="run the CSMS with simulated V2X stations (nothing else needed)"
    )
    demo.add_argument("--stations", type=int, default=3, help="simulated stations (default 3)")
    demo.add_argument(
        "--speed", type=float, default=360.0, help="simulated time runs X times faster (360)"
    )
    demo.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    demo.add_argument(
        "--data-dir", type=Path, default=None, help="keep the database here (default: temporary)"
    )
    demo.add_argument("--api-port", type=int, default=8000, help="REST API port (8000)")
    demo.add_argument("--ocpp-port", type=int, default=9000, help="OCPP port (9000)")
    demo.add_argument("--plain", action="store_true", help="no live redraw: print log lines")
    demo.set_defaults(handler=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments and arguments[0] == "v2g":
        return _cmd_v2g(arguments[1:])
    parser = build_parser()
    args = parser.parse_args(arguments)
    try:
        return int(args.handler(args))
    except (SettingsInvalid, PasswordKeyInvalid) as error:
        print(f"csms: {redact_url(str(error))}", file=sys.stderr)
        return EXIT_USAGE
    except admin_errors() as error:
        print(f"csms: {redact_url(str(error))}", file=sys.stderr)
        return EXIT_FAILURE
    except environment_errors() as error:
        # The database, a broker or a port is not there: a fact about the machine, not a bug.
        print(f"csms: {_one_line(error)}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


def environment_errors() -> tuple[type[Exception], ...]:
    """Errors from the machine around the CSMS (database, broker, sockets), shown as one line."""
    from nats.errors import Error as NatsError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from sqlalchemy.exc import DBAPIError

    return (OSError, DBAPIError, NatsError, RedisConnectionError)


def _one_line(error: BaseException) -> str:
    from sqlalchemy.exc import DBAPIError

    from csms.app import PortUnavailable
    from csms.persistence.unreachable import DatabaseUnreachable

    if isinstance(error, PortUnavailable | DatabaseUnreachable):  # already names what and where
        return redact_url(str(error).splitlines()[0])

    # SQLAlchemy appends the statement and a help link on further lines; the driver's own
    # message says what is wrong.
    cause = error.orig if isinstance(error, DBAPIError) and error.orig is not None else error
    text = str(cause).strip().splitlines()
    return redact_url(f"{type(cause).__name__}: {text[0] if text else type(cause).__name__}")


def admin_errors() -> tuple[type[Exception], ...]:
    """Errors of the admin commands shown as one line instead of a traceback."""
    import csms.cli_admin as admin

    return admin.USER_ERRORS


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
