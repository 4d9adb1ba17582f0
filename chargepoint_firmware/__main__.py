"""`python -m chargepoint_firmware ...` = the `chargepoint` command."""

import sys

from chargepoint_firmware.cli import main

sys.exit(main())
