"""`csms site add|list|show|update|delete` (issue 18): sites and their stations from the command
line. A one-shot command holds no station: what it changes reaches the stations through the
running server's refresh round (every 30 s) or their next connection; that round also calls
the envelope change listeners (the V2G re-plan) when a site's stations changed."""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

from csms.cli_common import (
    EXIT_OK,
    add_settings_flags,
    json_value,
    load_settings,
    print_json,
    run_admin,
)


def add_parser(commands: Any) -> None:
    """The `site` command and its actions, under `commands` (argparse subparsers)."""
    site = commands.add_parser("site", help="sites (a grid connection point) and their stations")
    site_commands = site.add_subparsers(dest="site_command", required=True, metavar="ACTION")
    site_add = site_commands.add_parser("add", help="create a site")
    site_update = site_commands.add_parser("update", help="change the given fields of a site")
    for sub, required in ((site_add, True), (site_update, False)):
        sub.add_argument("site_id", metavar="ID")
        sub.add_argument("--name", required=required)
        sub.add_argument("--nmi", help="National Metering Identifier (10 + checksum digit)")
        sub.add_argument("--lfdi", help="the site EndDevice's LFDI (40 hex digits)")
        sub.add_argument("--sfdi", type=int)
        sub.add_argument("--pin", type=int, help="the DNSP's registration PIN")
        sub.add_argument(
            "--csip", action=argparse.BooleanOptionalAction, default=None,
            help="register and poll the site with the CSIP-AUS server",
        )  # fmt: skip
        sub.add_argument("--stations", type=_stations_arg, help="station ids, comma-separated")
        sub.add_argument(
            "--meter-station", metavar="STATION",
            help="the site's station whose evse-0 Inlet meter is the household meter ('' = none)",
        )  # fmt: skip
    site_show = site_commands.add_parser("show", help="a site and its envelope in force")
    site_show.add_argument("site_id", metavar="ID")
    site_show.add_argument("--json", action="store_true", help="print JSON")
    site_delete = site_commands.add_parser("delete", help="delete a site")
    site_delete.add_argument("site_id", metavar="ID")
    site_list = site_commands.add_parser("list", help="list sites")
    site_list.add_argument("--json", action="store_true", help="print a JSON array")
    for sub in (site_add, site_update, site_show, site_delete, site_list):
        add_settings_flags(sub, ["database_url"])
    site.set_defaults(handler=run)


def _site_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The site fields given on the command line (None: not given)."""
    fields: dict[str, Any] = {}
    for name, value in (
        ("name", args.name),
        ("nmi", args.nmi),
        ("lfdi", args.lfdi),
        ("sfdi", args.sfdi),
        ("registration_pin", args.pin),
        ("csip_enabled", args.csip),
        ("station_ids", args.stations),
    ):
        if value is not None:
            fields[name] = value
    if args.meter_station is not None:
        fields["meter_station_id"] = args.meter_station or None
    return fields


def _site_dict(site: Any) -> dict[str, Any]:
    out = dataclasses.asdict(site)
    out["has_registration_pin"] = out.pop("registration_pin") is not None
    out["station_ids"] = list(site.station_ids)
    out["meter_source"] = (
        None if site.meter_station_id is None else {"station_id": site.meter_station_id}
    )
    del out["meter_station_id"]  # shown as the API shows it
    return out


def run(args: argparse.Namespace) -> int:
    import csms.cli_admin as admin

    settings = load_settings(args)
    command = args.site_command
    if command == "add":
        fields = {"id": args.site_id, **_site_fields(args)}
        site = run_admin(settings, lambda: admin.add_site(settings, fields))
        print(f"site {site.id} added with stations {', '.join(site.station_ids) or '-'}")
        return EXIT_OK
    if command == "update":
        changes = _site_fields(args)
        site = run_admin(settings, lambda: admin.update_site(settings, args.site_id, changes))
        print(f"site {site.id} updated: stations {', '.join(site.station_ids) or '-'}")
        return EXIT_OK
    if command == "delete":
        run_admin(settings, lambda: admin.delete_site(settings, args.site_id))
        print(f"site {args.site_id} deleted")
        return EXIT_OK
    if command == "show":
        site, view = run_admin(settings, lambda: admin.show_site(settings, args.site_id))
        if args.json:
            shown = {
                **_site_dict(site),
                "in_force": dataclasses.asdict(view.in_force) if view.in_force else None,
                "stations": [
                    {
                        "station_id": station_id,
                        "max_charge_w": bounds.max_charge_w,
                        "max_discharge_w": bounds.max_discharge_w,
                        "enforced": enforced,
                        "status": last.status,
                    }
                    for station_id, bounds, enforced, last in view.stations
                ],
            }
            print(json.dumps(shown, indent=2, default=json_value))
            return EXIT_OK
        print(f"site {site.id} ({site.name}) NMI {site.nmi or '-'} CSIP-AUS {site.csip_enabled}")
        env = view.in_force
        if env is None:
            print("envelope in force: none")
        else:
            print(
                f"envelope in force: {env.source} {env.control_id or '-'} from "
                f"{env.start.isoformat()} to {env.end.isoformat() if env.end else 'open'}: "
                f"export {env.export_limit_w} W, import {env.import_limit_w} W"
            )
        for station_id, bounds, enforced, last in view.stations:
            print(
                f"  {station_id:<24} charge <= {bounds.max_charge_w:.0f} W, discharge <= "
                f"{bounds.max_discharge_w:.0f} W, {last.status}"
                f"{' (enforced)' if enforced else ''}"
            )
        return EXIT_OK
    sites = run_admin(settings, lambda: admin.list_sites(settings))
    if args.json:
        print_json([_site_dict(site) for site in sites])
        return EXIT_OK
    print(f"{'ID':<24} {'NMI':<12} {'CSIP':<5} STATIONS")
    for site in sites:
        csip = "yes" if site.csip_enabled else "no"
        stations = ",".join(site.station_ids) or "-"
        print(f"{site.id:<24} {site.nmi or '-':<12} {csip:<5} {stations}")
    return EXIT_OK


def _stations_arg(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]
