"""Request body parsers shared by the browser-facing APIs."""

from rest_framework.parsers import JSONParser


class PlainTextJSONParser(JSONParser):
    """JSON sent as ``text/plain``: browsers send it that way to avoid a CORS preflight request
    (analytics.js does the same), so the body is JSON whatever the label says."""

    media_type = "text/plain"
