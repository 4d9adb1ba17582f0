"""Ids the V2G services use on the wire.

Stack levels and profile ids of their TxProfiles (each replaces its own previous profile on the
EVSE): the plan at PLAN_STACK_LEVEL, a fleet dispatch above it, a frequency event above both;
dispatch and frequency profiles have a `duration`, so the station falls back to the plan by
itself when they end. Also the emergency-backup DataTransfer and the measurands read.
"""

PLAN_STACK_LEVEL = 1
DISPATCH_STACK_LEVEL = 2
FREQUENCY_STACK_LEVEL = 3
PLAN_PROFILE_ID = 62_001
DISPATCH_PROFILE_ID = 62_002
FREQUENCY_PROFILE_ID = 62_003
# 2.1 CentralFrequency: a Dynamic profile whose setpoint the CSMS moves with each frequency
# sample (UpdateDynamicSchedule), at the frequency stack level (the plan resumes when cleared).
CENTRAL_FREQUENCY_PROFILE_ID = 62_004
# 2.1 aFRR: CentralFrequency with the fleet's v2xSignalWattCurve, moved by AFRRSignal; its own
# stack level (above the plan, dispatch, frequency event and CentralFrequency ones).
AFRR_PROFILE_ID = 62_005
AFRR_STACK_LEVEL = 6
# 2.1 local control (ExternalSetpoint, ExternalLimits, LocalLoadBalancing): the operator hands
# the power to the station's side for a while, above the plan and dispatches.
LOCAL_CONTROL_PROFILE_ID = 62_006
LOCAL_CONTROL_STACK_LEVEL = 7

# DataTransfer the emergency-backup switch sends (the agent's V2X extension).
BACKUP_VENDOR_ID = "org.openv2g.v2x"
BACKUP_MESSAGE_ID = "EmergencyBackup"

SOC = "SoC"
IMPORT_REGISTER = "Energy.Active.Import.Register"
EXPORT_REGISTER = "Energy.Active.Export.Register"
GRID_TECH_CODES = ("grid_lost", "grid_restored", "backup_mode")
