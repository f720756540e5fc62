"""LoRaWAN: devices of mapped ChirpStack applications, from its MQTT integration events."""

from gateways.lorawan.chirpstack import ChirpStackEvents

__all__ = ["ChirpStackEvents"]
