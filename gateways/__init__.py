"""Device-protocol adapters (MQTT, LoRaWAN, NB-IoT) that call the registry services."""
