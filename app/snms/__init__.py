"""An SNMS-compatible facade: integrations written for the SNMS secondary-node business
system (login at ``/identity/token``, identifiers at ``/identityv2/data``, templates at
``/snms/api/v5/template``) work against this node by changing their base URL.

Every operation is done by the services the node's own API uses (``app/registry``), so the
same store, templates, authorization, history, outbox and metrics apply; this package only
translates shapes, names and answers. README "Moving an SNMS integration" lists where
it differs from SNMS, and why.
"""
