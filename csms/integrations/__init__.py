"""Bridges from the CSMS to outside systems (Home Assistant over MQTT). They depend on the
services through narrow interfaces; nothing in csms.services imports them (csms/app.py wires them).
"""
