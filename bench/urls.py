"""The product's URLs plus ``/bench/bare``: a Django view that reads the body and answers JSON,
served by the same server and middleware, the baseline of bench/ingest.py."""

from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from config.urls import handler404, handler500
from config.urls import urlpatterns as product_urlpatterns

__all__ = ["handler404", "handler500", "urlpatterns"]


@csrf_exempt
def bare(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"success": True, "bytes": len(request.body)})


urlpatterns = [path("bench/bare", bare), *product_urlpatterns]
