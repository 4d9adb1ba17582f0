"""`csms demo`: the CSMS and simulated charge-point agents on one machine.

The only package that imports both products (`csms` and `chargepoint_firmware`); neither
imports it, except the `csms` command line, which starts it by a lazy import
(csms/cli.py `_cmd_demo`). run.py runs the demo, view.py draws its console table.
"""
