"""Registry services: the node's rules (what may be registered, by whom, with which values).

In four sub-packages: ``templates`` (template definitions, checking attributes, the bundled
templates, the catalog, conformance), ``devices`` (registration by hardware id, liveness,
provisioning keys, LoRaWAN and NB-IoT platforms), ``identifiers`` (record writes, templated
identifiers, bulk loads, idempotency, history, trace, search, recalls, scans, the public page) and
``access`` (enterprises, grants, public keys); ``clock`` is the one place the node reads the time.

A service takes the caller's session and leaves the commit to whoever started the unit of work,
with two exceptions that own their transactions because they run outside any request:
``identifiers.bulk_load`` commits each chunk of a batch, and ``identifiers.scans`` commits the
scan counts it flushes in the background.
"""
