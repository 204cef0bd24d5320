"""curvebus for Python scripts: CURVE-encrypted publish/subscribe with a
curvebus broker, and helpers to drive a robot through its agent.

    import curvebus
    with curvebus.connect() as c:          # flags > CURVEBUS_* > ./.curvebus
        c.subscribe("robot/+/telemetry")
        c.publish("chat/general", "hello")
        for m in c.messages(timeout=5):
            print(m.topic, m.payload)
"""
from .client import Client, CurvebusError, Message, connect
from .keys import read_certificate, resolve_settings
from .robot import CommandFailed, Robot

__all__ = ["Client", "CurvebusError", "Message", "connect", "read_certificate", "resolve_settings", "Robot",
           "CommandFailed"]
__version__ = "0.1.0"
