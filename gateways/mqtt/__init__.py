"""The MQTT device gateway (registration, heartbeats) and the embedded broker."""

from gateways.mqtt.broker import EmbeddedBroker, PortTaken
from gateways.mqtt.connection import BrokerAddress
from gateways.mqtt.gateway import MqttGateway

__all__ = ["BrokerAddress", "EmbeddedBroker", "MqttGateway", "PortTaken"]
