"""The DNSP's side of a CSIP-AUS test, through envoy's admin API (JSON, HTTP Basic): a DER
program, site DERControls (dynamic operating envelopes) and the program's DefaultDERControl.
What the CSMS's CSIP-AUS client then reads over 2030.5 from `EnvoyServer.base_url`.

envoy 1.5.0 facts behind it: a program is a `site_control_group` (its id is the DERProgram id in
`/edev/{site}/derp/{id}`); the default control belongs to the program, not to a site.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

from tests.support.csip_server import EnvoyServer


@dataclass(frozen=True)
class Envelope:
    """One site control as the admin API takes it (None: not sent to the client)."""

    start: dt.datetime
    duration_s: int
    export_limit_w: Decimal | None = None
    import_limit_w: Decimal | None = None
    generation_limit_w: Decimal | None = None
    load_limit_w: Decimal | None = None
    energize: bool | None = None
    connect: bool | None = None
    randomize_start_s: int | None = None

    def body(self, site_id: int) -> dict[str, Any]:
        def watts(value: Decimal | None) -> str | None:
            return None if value is None else str(value)

        return {
            "site_id": site_id,
            "calculation_log_id": None,
            "start_time": self.start.isoformat(),
            "duration_seconds": self.duration_s,
            "export_limit_watts": watts(self.export_limit_w),
            "import_limit_watts": watts(self.import_limit_w),
            "generation_limit_watts": watts(self.generation_limit_w),
            "load_limit_watts": watts(self.load_limit_w),
            "set_energized": self.energize,
            "set_connect": self.connect,
            "randomize_start_seconds": self.randomize_start_s,
        }


class EnvoyAdmin:
    """A thin client of envoy's admin API; every call asserts its documented status."""

    def __init__(self, envoy: EnvoyServer) -> None:
        self._client = httpx.AsyncClient(
            base_url=envoy.admin_url, auth=envoy.admin_auth, timeout=30
        )

    async def __aenter__(self) -> EnvoyAdmin:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._client.aclose()

    async def _expect(self, status: int, method: str, path: str, **kwargs: Any) -> httpx.Response:
        answer = await self._client.request(method, path, **kwargs)
        assert answer.status_code == status, f"{method} {path}: {answer.status_code} {answer.text}"
        return answer

    async def sites(self) -> list[dict[str, Any]]:
        """Every site (EndDevice registered by an aggregator): site_id, lfdi, sfdi, nmi, ..."""
        answer = await self._expect(200, "GET", "/site", params={"start": 0, "limit": 500})
        return list(answer.json()["sites"])

    async def site_id_of(self, lfdi: str) -> int:
        for site in await self.sites():
            if str(site["lfdi"]).lower() == lfdi.lower():
                return int(site["site_id"])
        raise AssertionError(f"no site with LFDI {lfdi}")

    async def create_program(self, description: str = "dnsp doe", primacy: int = 0) -> int:
        """A DER program (site_control_group) for every site; its id (the DERProgram id)."""
        answer = await self._expect(
            201,
            "POST",
            "/site_control_group",
            json={"description": description[:32], "primacy": primacy},
        )
        return int(answer.headers["location"].rsplit("/", 1)[1])

    async def add_envelopes(self, program: int, site_id: int, envelopes: list[Envelope]) -> None:
        await self._expect(
            201,
            "POST",
            f"/site_control_group/{program}/controls",
            json=[e.body(site_id) for e in envelopes],
        )

    async def envelopes(self, program: int) -> list[dict[str, Any]]:
        answer = await self._expect(
            200, "GET", f"/site_control_group/{program}/controls", params={"limit": 500}
        )
        return list(answer.json()["controls"])

    async def cancel_envelopes(self, program: int, start: dt.datetime, end: dt.datetime) -> None:
        """Delete the program's controls that start in [start, end) (envoy's cancellation)."""
        await self._expect(
            204,
            "DELETE",
            f"/site_control_group/{program}/controls/{start.isoformat()}/{end.isoformat()}",
        )

    async def set_default(
        self,
        program: int,
        *,
        export_limit_w: Decimal | None = None,
        import_limit_w: Decimal | None = None,
        generation_limit_w: Decimal | None = None,
        load_limit_w: Decimal | None = None,
        ramp_rate: Decimal | None = None,
    ) -> None:
        """The program's DefaultDERControl; None leaves a value as it is. `ramp_rate` lands in
        setGradW unchanged (2030.5: hundredths of a percent of setMaxW per second)."""

        def value(v: Decimal | None) -> dict[str, str] | None:
            return None if v is None else {"value": str(v)}

        await self._expect(
            204,
            "POST",
            f"/site_control_group/{program}/default",
            json={
                "export_limit_watts": value(export_limit_w),
                "import_limit_watts": value(import_limit_w),
                "generation_limit_watts": value(generation_limit_w),
                "load_limit_watts": value(load_limit_w),
                "ramp_rate_percent_per_second": value(ramp_rate),
            },
        )

    async def set_runtime_config(self, **values: int | bool) -> None:
        """envoy's runtime config: dcap_pollrate_seconds, edevl_pollrate_seconds,
        fsal_pollrate_seconds, derpl_pollrate_seconds, derl_pollrate_seconds,
        mup_postrate_seconds, site_control_pow10_encoding (the multiplier of every DERControl
        value sent), tariff_pow10_encoding, disable_edev_registration."""
        await self._expect(204, "POST", "/server_config/run_time", json=values)

    async def site_readings(
        self, site_id: int, unit: int, start: dt.datetime, end: dt.datetime
    ) -> list[dict[str, Any]]:
        """What the site mirrored (MUP readings), in load convention (positive = import):
        unit 1 active power W, 2 reactive var, 3 frequency Hz, 4 voltage V. Each reading:
        reading_start_time, duration_seconds, phase, value."""
        answer = await self._expect(
            200,
            "GET",
            f"/site_readings/{site_id}/csip_aus_unit/{unit}/period/"
            f"{start.isoformat()}/{end.isoformat()}",
        )
        return list(answer.json()["readings"])
