"""The operator dashboard in a real headless Chromium (Debian's `chromium` + `chromedriver`,
driven by selenium), against the real CSMS with simulated stations over loopback.

Covers: sign-in (a wrong token refused, read and operate tokens), every view rendering with
data from running stations, commands sent from forms reaching a station, a live value changing
on screen without a reload, and no request leaving loopback (Chromium's network log).
Screenshots go to tmp_path, and to CSMS_DASHBOARD_SCREENSHOTS (e.g. docs/images) when set.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest

from chargepoint_firmware.simulate import Car
from csms.domain.models import ApiScope
from csms.domain.sites import nmi_checksum
from tests.support.e2e_stack import E2eStack, running_stack, until

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
# .ci/run installs Chromium and sets this: then a missing browser fails instead of skipping.
REQUIRED = os.environ.get("CSMS_TEST_BROWSER") == "required"

pytestmark = pytest.mark.skipif(
    not REQUIRED and (CHROMIUM is None or CHROMEDRIVER is None),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium "
    "chromium-driver); .ci/run installs them",
)

SPEED = 30.0  # simulated seconds per real second: the car charges visibly within seconds
T = TypeVar("T")


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM or "chromium"
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in CI
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        "--disable-background-networking",  # no update checks or field trials
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-features=Translate,OptimizationHints,MediaRouter",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER or "chromedriver"))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


class Page:
    """The browser, used from the test's event loop through a thread (selenium blocks)."""

    def __init__(self, driver: Any, base: str, shots: Path) -> None:
        self.driver = driver
        self.base = base
        self.shots = shots
        self.requests: list[str] = []

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    async def go(self, path: str) -> None:
        await self.run(self.driver.get, self.base + path)

    async def js(self, script: str, *args: Any) -> Any:
        return await self.run(self.driver.execute_script, script, *args)

    async def wait_js(self, script: str, within_s: float = 15.0, what: str = "") -> Any:
        async def check() -> Any:
            return await self.js(script)

        return await until(check, within_s=within_s, what=what or script)

    async def ready(self, view: str) -> None:
        await self.wait_js(
            f"const v = document.getElementById('view-{view}'); return v && v.dataset.ready",
            what=f"view {view} rendered",
        )

    async def text(self, selector: str) -> str:
        found = await self.js(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : null",
            selector,
        )
        assert found is not None, f"{selector} not on the page"
        return str(found)

    async def sign_in(self, token: str) -> None:
        await self.js(
            "document.getElementById('token').value = arguments[0];"
            "document.getElementById('sign-in').requestSubmit();",
            token,
        )

    async def screenshot(self, name: str) -> None:
        await self.run(self.driver.save_screenshot, str(self.shots / f"{name}.png"))

    async def collect_requests(self) -> list[str]:
        for entry in await self.run(self.driver.get_log, "performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method") == "Network.requestWillBeSent":
                self.requests.append(message["params"]["request"]["url"])
        return self.requests


async def _stack_with_stations(stack: E2eStack) -> tuple[str, str]:
    charging = await stack.add_station(
        "DASH-1", car=Car("Leaf", 40.0, 30.0), speed=SPEED, meter_interval_s=int(SPEED)
    )
    await stack.add_station(
        "DASH-2", car=Car("e-NV200", 40.0, 60.0), speed=SPEED, meter_interval_s=int(SPEED)
    )
    charging.plug_in()
    tx = await stack.remote_start(charging)
    # The device model reaches the CSMS through a base report (B07).
    report = await stack.api.post(
        "/stations/DASH-1/ocpp/GetBaseReport", json={"requestId": 7, "reportBase": "FullInventory"}
    )
    assert report.json()["status"] == "Accepted", report.text

    async def variables() -> bool:
        page = (await stack.api.get("/stations/DASH-1/variables", params={"limit": 1})).json()
        return bool(page["total"])

    await until(variables, within_s=15, what="the base report stored")
    return "DASH-1", tx


async def _v2g_data(stack: E2eStack, station_id: str) -> None:
    """A vehicle at the charging station and a day of prices (cheap night, dear evening)."""
    response = await stack.api.post(
        "/vehicles",
        json={
            "id": "CAR-1",
            "name": "Leaf 40",
            "capacity_kwh": 40.0,
            "max_charge_kw": 7.0,
            "max_discharge_kw": 7.0,
            "station_id": station_id,
            "evse_id": 1,
        },
    )
    assert response.status_code == 201, response.text
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    intervals = [
        {
            "start": (start + timedelta(minutes=30 * i)).isoformat(),
            "interval_s": 1800,
            "import_c_kwh": 45.0 if 34 <= (i + start.hour * 2) % 48 <= 41 else 12.0,
            "export_c_kwh": 40.0 if 34 <= (i + start.hour * 2) % 48 <= 41 else 5.0,
        }
        for i in range(48)
    ]
    response = await stack.api.put("/prices", json={"intervals": intervals})
    assert response.status_code == 200, response.text


async def test_dashboard_in_headless_chromium(tmp_path: Path, browser: Any) -> None:
    shots = tmp_path / "shots"
    shots.mkdir()
    async with running_stack(tmp_path) as stack:
        assert stack.csms is not None
        station_id, tx = await _stack_with_stations(stack)
        await _v2g_data(stack, station_id)
        services = stack.csms.services
        read_token = (await services.api_tokens.create("viewer", ApiScope.READ)).plaintext
        operate_token = (await services.api_tokens.create("operator", ApiScope.OPERATE)).plaintext
        page = Page(browser, stack.csms.api_url, shots)

        # -- sign-in: a wrong token is refused, a read token gets in ------------------------
        await page.go("/")
        await page.wait_js("return !document.getElementById('sign-in').hidden")
        await page.sign_in("csms_not-a-token")
        await page.wait_js(
            "return document.getElementById('sign-in-error').textContent", what="refusal"
        )
        assert "not valid" in await page.text("#sign-in-error")
        await page.sign_in(read_token)
        await page.ready("overview")
        assert await page.text("#who") == "viewer (read)"
        assert await page.js("return sessionStorage.getItem('csms.token')") == read_token

        # -- overview: stations online, power now from the live stream ------------------------
        assert await page.text("#ov-online") == "2 / 2"
        await page.wait_js(
            "return parseFloat(document.getElementById('ov-import').textContent) > 0",
            within_s=60,  # the car's contactor sequence first; slower on a loaded machine
            what="charging power on the overview",
        )
        assert await page.js("return document.querySelectorAll('#view-overview canvas').length")
        # The fleet chart gains a point a second without a reload.
        await page.wait_js(
            "return document.getElementById('chart-fleet').__points() >= 6", what="fleet chart"
        )
        await page.screenshot("dashboard-overview")

        # -- stations: rows, connector states, search, a live value changing without reload --
        await page.go("/#/stations")
        await page.ready("stations")
        await page.js("window.__sameDocument = 'yes'")
        rows = await page.js(
            "return [...document.querySelectorAll('#stations-table tbody tr')]"
            ".map(r => r.dataset.station)"
        )
        assert rows == ["DASH-1", "DASH-2"]
        row = "#stations-table tr[data-station='DASH-1']"
        assert "Occupied" in await page.text(f"{row} td:nth-child(6)")
        assert "2.0.1" in await page.text(f"{row} td:nth-child(3)")  # OCPP version negotiated
        assert await page.js(f'return document.querySelector("{row} .dot.on") !== null')
        first_soc = await page.wait_js(
            f'const t = document.querySelector("{row} td:nth-child(8)").textContent;'
            "return t !== '-' && t",
            within_s=30,
            what="a SoC in the stations list",
        )
        changed = await page.wait_js(
            f'const t = document.querySelector("{row} td:nth-child(8)").textContent;'
            f"return t !== {json.dumps(first_soc)} && t",
            within_s=60,
            what="the SoC changing on screen",
        )
        assert float(changed.split()[0]) > float(first_soc.split()[0])  # it charges
        assert await page.js("return window.__sameDocument") == "yes"  # no reload happened
        assert "+" in await page.text(f"{row} td:nth-child(7)")  # charging: + kW
        await page.screenshot("dashboard-stations")
        await page.js(
            "const s = document.getElementById('station-search'); s.value = '2';"
            "s.dispatchEvent(new Event('input'))"
        )
        await page.wait_js(
            "const r = [...document.querySelectorAll('#stations-table tbody tr')];"
            "return r.length === 1 && r[0].dataset.station === 'DASH-2'",
            what="the search narrowing the list",
        )

        # -- station view (read scope: no command forms) --------------------------------------
        await page.go(f"/#/station/{station_id}")
        await page.ready("station")
        assert "No transaction running" not in await page.text("#tx-info")
        assert tx in await page.text("#tx-info")
        assert await page.js("return document.querySelectorAll('#chart-power canvas').length")
        assert "Occupied" in await page.text("#station-evses")
        assert "RequestStartTransaction" in await page.text("#station-messages")
        assert await page.js(
            "return document.querySelectorAll('#station-variables tbody tr').length"
        )
        assert "operate token" in await page.text("#station-commands")
        # The power chart holds the transaction's meter values and grows with live ones.
        series = "document.getElementById('chart-power').__points"
        assert await page.js(f"return {series}()") >= 1
        before = await page.js(f"return {series}()")
        await page.wait_js(f"return {series}() > {before}", within_s=30, what="a live point")
        await page.screenshot("dashboard-station")

        # -- operate token: commands from forms reach the station ------------------------------
        await page.js("document.getElementById('sign-out').click()")
        await page.wait_js(
            "const f = document.getElementById('sign-in'); return f && !f.hidden",
            what="the sign-in form after signing out",
        )
        await page.sign_in(operate_token)
        await page.wait_js("return document.getElementById('who').textContent", what="signed in")
        await page.go("/#/station/DASH-2")
        await page.ready("station")
        await page.js(
            "const f = document.getElementById('form-availability');"
            "f.querySelector('[name=operationalStatus]').value = 'Inoperative';"
            "f.requestSubmit()"
        )
        answer = await page.wait_js(
            "const t = document.getElementById('command-answer').textContent;"
            "return t.includes('status') && t",
            what="the station's answer to ChangeAvailability",
        )
        assert json.loads(answer)["status"] == "Accepted"

        async def unavailable() -> bool:
            evses = (await stack.api.get("/stations/DASH-2/evses")).json()
            return evses[0]["connectors"][0]["status"] == "Unavailable"

        await until(unavailable, within_s=15, what="DASH-2 reporting Unavailable")
        await page.wait_js(
            "return document.getElementById('station-evses').textContent.includes('Unavailable')",
            what="the new connector state on screen",
        )
        # The generic form: an action's form built from its OCA schema.
        await page.js(
            "const p = document.getElementById('generic-action'); p.value = 'TriggerMessage';"
            "p.dispatchEvent(new Event('change'))"
        )
        await page.wait_js(
            "return document.querySelector('#station-generic [name=requestedMessage]') !== null",
            what="the TriggerMessage form",
        )
        await page.js(
            "document.querySelector('#station-generic [name=requestedMessage]').value = "
            "'Heartbeat'; document.getElementById('generic-send').click()"
        )
        generic = await page.wait_js(
            "const t = document.getElementById('generic-answer').textContent;"
            "return t.includes('status') && t",
            what="the station's answer to TriggerMessage",
        )
        assert json.loads(generic)["status"] == "Accepted"
        await page.screenshot("dashboard-commands")

        # -- V2G: plan the vehicle through the API, then the view and the what-if page --------
        sent = await stack.api.post(f"/stations/{station_id}/v2g/optimize", json={})
        assert sent.status_code == 200, sent.text
        await page.go("/#/v2g")
        await page.ready("v2g")
        assert "CAR-1" in await page.text("#v2g-fleet")
        card = "#v2g-vehicles [data-vehicle='CAR-1']"
        assert await page.js(f'return document.querySelectorAll("{card} canvas").length') >= 3
        assert "AUD" in await page.text(f"{card} .economics")
        await page.screenshot("dashboard-v2g")
        await page.go("/#/what-if")
        await page.ready("what-if")
        await page.js("document.getElementById('form-what-if').requestSubmit()")
        summary = await page.wait_js(
            "const t = document.getElementById('what-if-summary').textContent;"
            "return t.includes('plain charging') && t",
            within_s=30,
            what="the what-if plan",
        )
        assert "threshold rules" in summary
        charts = await page.js("return document.querySelectorAll('#what-if-chart canvas').length")
        assert charts == 3  # price, power (plan + baselines), SoC
        await page.screenshot("dashboard-what-if")

        # -- nothing left loopback --------------------------------------------------------------
        requests = await page.collect_requests()
        assert any("/api/v1/dashboard/live" in url for url in requests)
        outside = [
            url
            for url in requests
            if urlsplit(url).scheme not in ("data", "blob")
            and urlsplit(url).hostname not in ("127.0.0.1", "localhost", "::1")
        ]
        assert outside == []

    keep = os.environ.get("CSMS_DASHBOARD_SCREENSHOTS")
    if keep:
        _keep_screenshots(shots, Path(keep))


async def _fill(page: Page, form: str, values: dict[str, str]) -> None:
    """Set the named inputs of a form (as typing would) and submit it."""
    await page.js(
        "const f = document.getElementById(arguments[0]);"
        "for (const [k, v] of Object.entries(arguments[1])) {"
        "  const i = f.querySelector(`[name=${k}]`);"
        "  if (i.type === 'checkbox') i.checked = v === 'on'; else i.value = v; }"
        "f.requestSubmit()",
        form,
        values,
    )


async def test_sites_view_operator_envelope_in_force(tmp_path: Path, browser: Any) -> None:
    """Issue 18: the dashboard shows a site's envelope in force, its source and its time.
    A site is created and an operator envelope set through the forms (the API's 422 and 409
    shown as such), then seen in force with its source, start and reception, the station's
    bounds under it, and cleared again. Hostile text from the API stays text."""
    shots = tmp_path / "shots"
    shots.mkdir()
    hostile = '<img src=x onerror="window.__xss=1">Home & co'
    async with running_stack(tmp_path) as stack:
        assert stack.csms is not None
        await stack.add_station("SITE-CS1", car=Car("Leaf", 40.0, 50.0))
        admin = (await stack.csms.services.api_tokens.create("admin", ApiScope.ADMIN)).plaintext
        page = Page(browser, stack.csms.api_url, shots)
        await page.go("/")
        await page.wait_js("return !document.getElementById('sign-in').hidden")
        await page.sign_in(admin)
        await page.wait_js("return document.getElementById('who').textContent", what="signed in")

        # -- the list, and the create form: a bad NMI refused with the field named ----------
        await page.go("/#/sites")
        await page.ready("sites")
        assert await page.js("return document.getElementById('sites-empty') !== null")
        nmi = "4102000000"
        wrong = f"{nmi}{(nmi_checksum(nmi) + 1) % 10}"
        site = {"id": "home-1", "name": hostile, "nmi": wrong, "station_ids": "SITE-CS1"}
        await _fill(page, "form-site-create", site)
        refused = await page.wait_js(
            "const t = document.getElementById('form-site-create-answer').textContent;"
            "return t.startsWith('Invalid') && t",
            what="the 422 for a wrong NMI checksum",
        )
        assert "(422)" in refused and "checksum" in refused and "nmi" in refused.lower()
        await _fill(page, "form-site-create", dict(site, nmi=f"{nmi}{nmi_checksum(nmi)}"))
        await page.wait_js("return location.hash === '#/site/home-1'", what="the new site's page")
        await page.ready("site")
        assert hostile in await page.text("#site-title")
        assert "CSIP-AUS off" in await page.text("#site-details")
        assert await page.js("return document.getElementById('site-no-envelope') !== null")

        # -- a second site claiming the same station: 409, said so -----------------------------
        await page.go("/#/sites")
        await page.ready("sites")
        row = "#sites-table tr[data-site='home-1']"
        assert await page.text(f"{row} td:nth-child(2)") == hostile
        assert await page.text(f"{row} td:nth-child(4)") == "SITE-CS1"
        assert await page.text(f"{row} td:nth-child(5)") == "off"
        await _fill(
            page, "form-site-create", {"id": "home-2", "name": "Two", "station_ids": "SITE-CS1"}
        )
        conflict = await page.wait_js(
            "const t = document.getElementById('form-site-create-answer').textContent;"
            "return t.startsWith('Conflict') && t",
            what="the 409 for a station in another site",
        )
        assert "(409)" in conflict and "home-1" in conflict

        # -- an operator envelope through the form: first refused (end before start) ----------
        await page.go("/#/site/home-1")
        await page.ready("site")
        start = await page.js(
            "return document.querySelector('#form-site-operator [name=start]').value"
        )
        await _fill(page, "form-site-operator", {"end": start, "export_limit_kw": "1.5"})
        bad = await page.wait_js(
            "const t = document.getElementById('site-operator-answer').textContent;"
            "return t.startsWith('Invalid') && t",
            what="the 422 for an envelope ending at its start",
        )
        assert "end must be after start" in bad
        await _fill(
            page,
            "form-site-operator",
            {"end": "", "export_limit_kw": "1.5", "import_limit_kw": "7", "control_id": "peak-cap"},
        )
        source = await page.wait_js(
            "const e = document.querySelector('#site-in-force [data-field=source] td');"
            "return e && e.textContent",
            what="the envelope in force",
        )
        assert source == "operator control peak-cap"
        field = "#site-in-force [data-field={}] td"
        assert await page.text(field.format("export_limit_w")) == "1.50 kW"
        assert await page.text(field.format("import_limit_w")) == "7.00 kW"
        assert await page.text(field.format("generation_limit_w")) == "not set"
        assert await page.text(field.format("end")) == "open-ended"
        view = (await stack.api.get("/sites/home-1/envelope")).json()
        in_force = view["in_force"]
        assert (in_force["source"], in_force["control_id"]) == ("operator", "peak-cap")
        assert in_force["export_limit_w"] == 1500.0
        shown = await page.js(
            "const t = (k) => document.querySelector(`#site-in-force [data-field=${k}] time`);"
            "return [t('start').getAttribute('datetime'),"
            " t('received_at').getAttribute('datetime'), t('start').textContent]"
        )
        assert _instant(shown[0]) == _instant(in_force["start"])
        assert _instant(shown[1]) == _instant(in_force["received_at"])
        assert shown[2]  # the start in the browser's local time
        received = _instant(in_force["received_at"])
        assert abs((received - datetime.now(UTC)).total_seconds()) < 120
        # The station's bounds under the envelope: its share of the 1.5 kW export limit.
        station = "#site-stations tr[data-station='SITE-CS1']"
        assert await page.text(f"{station} td:nth-child(2)") == "7.00 kW"  # import limit
        assert await page.text(f"{station} td:nth-child(3)") == "1.50 kW"
        # The running station accepted the site's profile: enforced, with its answer.
        assert await page.text(f"{station} td:nth-child(4)") == "yes"
        assert await page.text(f"{station} td:nth-child(5)") == "Accepted"
        assert (await page.text("#site-upcoming")).count("peak-cap") == 1
        await page.screenshot("dashboard-site")

        # -- cleared: no envelope in force any more ---------------------------------------------
        await page.js("document.getElementById('site-operator-clear').click()")
        await page.wait_js(
            "return document.getElementById('site-no-envelope') !== null",
            what="no envelope after clearing",
        )
        assert (await stack.api.get("/sites/home-1/envelope")).json()["in_force"] is None

        # -- the edit form: CSIP-AUS on with a registration PIN ---------------------------------
        await _fill(page, "form-site-edit", {"csip_enabled": "on", "registration_pin": "111115"})
        await page.wait_js(
            "const d = document.getElementById('site-details');"
            "return d && d.textContent.includes('CSIP-AUS on')",
            what="the edited site shown again",
        )
        await page.ready("site")
        assert "registration PIN set" in await page.text("#site-details")
        assert await page.js("return document.getElementById('site-csip') !== null")
        assert "enter the PIN again" in await page.text("#form-site-edit-pin-note")
        edited = (await stack.api.get("/sites/home-1")).json()
        assert (edited["csip_enabled"], edited["has_registration_pin"]) == (True, True)
        assert edited["name"] == hostile and edited["station_ids"] == ["SITE-CS1"]
        # Every hostile string stayed text: no element made of it, nothing it ran.
        assert await page.js("return document.querySelectorAll('#view img').length") == 0
        assert await page.js("return window.__xss === undefined")

    keep = os.environ.get("CSMS_DASHBOARD_SCREENSHOTS")
    if keep:
        _keep_screenshots(shots, Path(keep))


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _keep_screenshots(shots: Path, into: Path) -> None:
    into.mkdir(parents=True, exist_ok=True)
    for shot in shots.glob("*.png"):
        shutil.copy(shot, into / shot.name)
