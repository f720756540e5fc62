"""HTTP: the Handle REST API, the node's own v1 API, and the proxy pages.

Routes take an identifier as ``{handle:handle}``: Starlette's ``path`` matches ``.*``, which
stops at a newline, so ``PUT /api/handles/88.999.1/A%0AB`` matched no route and got a generic
404. This one matches every character and leaves refusing control characters to the
identifier grammar (Handle error 102), as for every other malformed handle. Registered here,
before any router module declares its routes.
"""

from starlette.convertors import PathConvertor, register_url_convertor


class _HandleConvertor(PathConvertor):
    regex = "(?s:.*)"


register_url_convertor("handle", _HandleConvertor())
