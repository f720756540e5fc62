"""Rendering the node's human-facing pages in the language the request asks for."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from app.i18n import Language
from app.node import Node


def language_of(node: Node, request: Request) -> Language:
    """``?lang=`` when the node has that language, else the best ``Accept-Language`` match."""
    return node.languages.choose(
        override=request.query_params.get("lang"),
        accept=request.headers.get("accept-language"),
    )


def render(
    node: Node,
    request: Request,
    template: str,
    status: int = 200,
    *,
    headers: Mapping[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """``template`` rendered in the request's language (``lang`` in the page)."""
    language = language_of(node, request)
    with node.languages.speaking(language):
        html = node.pages.get_template(template).render(
            node_prefix=node.settings.node_prefix,
            lang=language,
            switch=_switch(node, request, language),
            **context,
        )
    vary = {"Vary": "Accept-Language", "Content-Language": language.html_lang}
    return HTMLResponse(html, status, headers={**vary, **(headers or {})})


def _switch(node: Node, request: Request, current: Language) -> list[dict[str, Any]]:
    """Links to this page in each language the node has (``?lang=``)."""
    links = []
    for tag in node.languages.tags:
        language = node.languages[tag]
        url = request.url.include_query_params(lang=tag)
        links.append(
            {
                "href": f"{url.path}?{url.query}",
                "lang": language.html_lang,
                "name": language.name,
                "current": language is current,
            }
        )
    return links
