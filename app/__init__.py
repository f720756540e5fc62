"""The node: HTTP API, storage, registry services, CLI."""
