"""django-csp's middleware, made to leave the paths excluded from the policy alone before it builds
the policy rather than after: those are the collector and the JSON APIs, the hot paths."""

from csp.middleware import CSPMiddleware
from django.conf import settings
from django.http import HttpRequest
from django.http.response import HttpResponseBase


def _excluded_prefixes() -> tuple[str, ...]:
    policies = (
        getattr(settings, name, None) or {}
        for name in ("CONTENT_SECURITY_POLICY", "CONTENT_SECURITY_POLICY_REPORT_ONLY")
    )
    return tuple(prefix for policy in policies for prefix in policy.get("EXCLUDE_URL_PREFIXES", ()))


class PagePolicyMiddleware(CSPMiddleware):
    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        if request.path_info.startswith(_excluded_prefixes()):
            return response
        return super().process_response(request, response)
