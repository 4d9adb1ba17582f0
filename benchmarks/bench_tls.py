"""TLS handshake rate of the CSMS's OCPP endpoint, per cipher suite (issue 11, finding 9).

    .venv/bin/python benchmarks/bench_tls.py [--seconds 5]

Starts the real OCPP endpoint (tests/support/csms_harness.py) on a loopback port with an RSA 2048
and an ECDSA P-256 certificate (throw-away PKI), then for each suite runs `openssl s_time -new`
(a separate process: full handshakes, no session reuse, no websocket upgrade) and prints the
handshakes completed per second of wall time. The CSMS side is this one Python process (one
event loop); the figures are its handshake capacity on this machine, not a latency.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.csms_harness import running_csms  # noqa: E402
from tests.support.csms_pki import make_pki  # noqa: E402

CASES = [  # (label, s_time protocol flag, -cipher / -ciphersuites value)
    ("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "-tls1_2", "ECDHE-ECDSA-AES128-GCM-SHA256"),
    ("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "-tls1_2", "ECDHE-ECDSA-AES256-GCM-SHA384"),
    ("TLS_RSA_WITH_AES_128_GCM_SHA256", "-tls1_2", "AES128-GCM-SHA256"),
    ("TLS_RSA_WITH_AES_256_GCM_SHA384", "-tls1_2", "AES256-GCM-SHA384"),
    ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "-tls1_2", "ECDHE-RSA-AES128-GCM-SHA256"),
    ("TLS 1.3 TLS_AES_128_GCM_SHA256", "-tls1_3", "TLS_AES_128_GCM_SHA256"),
]
_REAL = re.compile(rb"(\d+) connections in \d+ real seconds")


async def handshake_rate(port: int, ca: Path, flag: str, suite: str, seconds: int) -> float:
    option = "-ciphersuites" if flag == "-tls1_3" else "-cipher"
    started = time.monotonic()  # s_time's own "real seconds" are whole seconds
    process = await asyncio.create_subprocess_exec(
        "openssl",
        "s_time",
        "-connect",
        f"127.0.0.1:{port}",
        "-new",
        "-time",
        str(seconds),
        flag,
        option,
        suite,
        "-CAfile",
        str(ca),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    elapsed = time.monotonic() - started
    found = _REAL.search(output)
    if process.returncode != 0 or found is None:
        raise SystemExit(f"openssl s_time failed for {suite}:\n{output.decode(errors='replace')}")
    return int(found.group(1)) / elapsed


async def main(seconds: int) -> None:
    if shutil.which("openssl") is None:
        raise SystemExit("needs the openssl command")
    with tempfile.TemporaryDirectory(prefix="bench-tls-") as directory:
        tmp = Path(directory)
        pki = make_pki(tmp / "pki")
        settings = {
            "tls_rsa_cert_file": pki.server_rsa.cert_file,
            "tls_rsa_key_file": pki.server_rsa.key_file,
            "tls_ecdsa_cert_file": pki.server.cert_file,
            "tls_ecdsa_key_file": pki.server.key_file,
        }
        async with running_csms(tmp, **settings) as csms:
            port = csms.server.port
            print(f"{'suite':45} handshakes/s  ({seconds} s each, openssl s_time -new)")
            for label, flag, suite in CASES:
                rate = await handshake_rate(port, pki.ca.cert_file, flag, suite, seconds)
                print(f"{label:45} {rate:10.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5, help="per suite (default 5)")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.seconds))
