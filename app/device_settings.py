"""The device gateway's settings (MQTT, ChirpStack, NB-IoT ingest, device liveness): a part
of :class:`app.settings.Settings`, which reads them from ``IDNODE_*`` variables as the rest."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings


class DeviceSettings(BaseSettings):
    """The fields :class:`app.settings.Settings` has for the device gateway."""

    # --- device gateway (MQTT) ---
    mqtt_url: str | None = Field(
        None,
        description="Broker the device gateway connects to: mqtt://[user:pass@]host[:port] or "
        "mqtts://... for TLS. Unset: `idnode serve` runs an embedded broker (see below).",
    )
    embedded_broker: bool = Field(
        False,
        description="Run an in-process MQTT 3.1.1 broker (amqtt) for the gateway when no "
        "IDNODE_MQTT_URL is set. `idnode serve` turns it on unless given --no-broker.",
    )
    embedded_broker_port: int = Field(
        1883, ge=1, le=65535, description="Port of the embedded broker (on 127.0.0.1)."
    )
    mqtt_topic_root: str = Field(
        "idnode/v1", description="First topic levels of the device protocol (see docs/devices.md)."
    )
    mqtt_shared_group: str | None = Field(
        None,
        description="Subscribe through $share/<group>/... so several gateway processes split "
        "the messages (Mosquitto 2, EMQX).",
    )
    mqtt_client_id: str | None = Field(
        None,
        description="MQTT client id of this gateway; fixed ids keep the broker session (and "
        "QoS 1 messages queued meanwhile) across gateway restarts. Default: host and pid.",
    )
    mqtt_session_expiry: int = Field(
        3600, ge=0, description="Seconds the broker keeps the gateway's session while away."
    )
    mqtt_max_payload: int = Field(
        65536, ge=256, description="Largest device message accepted, in bytes."
    )
    mqtt_concurrency: int = Field(
        4,
        ge=1,
        description="Registration transactions (and other device messages) one gateway "
        "process runs at once.",
    )
    mqtt_registration_batch: int = Field(
        100, ge=1, description="Most waiting registrations one transaction takes."
    )
    mqtt_max_backoff: float = Field(
        10.0, gt=0, description="Longest wait between reconnection attempts, in seconds."
    )
    chirpstack_topic: str = Field(
        "application/+/device/+/event/+",
        description="Topic filter of ChirpStack v4 integration events the gateway follows.",
    )

    # --- NB-IoT ingest (OneNET, CTWing) ---
    nbiot_queue_limit: int = Field(
        10_000,
        ge=1,
        description="Platform pushes waiting to be applied (over all processes on the "
        "database) beyond which new pushes are answered 503 Busy, so the platform retries.",
    )
    nbiot_poll_interval: float = Field(
        1.0,
        gt=0,
        description="Seconds between looks for pushes that other processes took or that "
        "waited through a restart (a process's own pushes are applied at once).",
    )

    # --- device liveness ---
    device_offline_after: float = Field(
        300.0, gt=0, description="Seconds of silence after which a device is shown offline."
    )
    device_liveness_ttl: int = Field(
        60, ge=0, description="TTL of the lastSeen/online/batteryLevel values of device records."
    )
    device_republish_after: float = Field(
        30.0,
        ge=0,
        description="Heartbeats rewrite a record's lastSeen at most this often (online and "
        "battery changes are written at once).",
    )
    heartbeat_flush_interval: float = Field(
        0.5, gt=0, description="Seconds between heartbeat batch writes."
    )
    heartbeat_batch_size: int = Field(
        2000, ge=1, description="Pending heartbeats that trigger a write before the interval."
    )
