"""NB-IoT: OneNET and CTWing HTTP pushes, registering devices by IMEI."""

from gateways.nbiot.endpoints import router
from gateways.nbiot.ingest import IngestQueue

__all__ = ["IngestQueue", "router"]
