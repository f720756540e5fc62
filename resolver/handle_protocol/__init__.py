"""The Handle protocol (RFC 3652) as the CAICT ID-SDK speaks it: frames, bodies, a client.

Pure codec and client: no web framework, no database (``gateways/handle`` is the server).
"""
