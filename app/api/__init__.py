"""HTTP: the Handle REST API, the node's own v1 API, and the proxy pages."""
