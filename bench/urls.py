"""The product's URLs plus two views to compare the recommendation API against, served by the same
server and middleware:

- ``/bench/bare``: a Django view that reads the body and answers JSON (the baseline of
  bench/ingest.py and bench/serve.py);
- ``/bench/floor``: the least any implementation of the recommendation API has to do on top of
  it. It reads the visitor's keys in one round trip to Redis (those serving reads with the
  consent state: live profile, session lists, a shared answer, and two consent states), appends
  an exposure-sized entry to a stream of its own in a second, and answers a body the size of ten
  recommendations. No consent rules, no campaign, no strategy, no business rules, no exposure
  validation: what is left of an answer when all of its logic costs nothing.
"""

import uuid

import msgspec
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from config.cache import redis_cache
from config.urls import handler404, handler500
from config.urls import urlpatterns as product_urlpatterns
from personalization import session_lists
from tracking import live_mirror, stream

__all__ = ["FLOOR_STREAM", "handler404", "handler500", "urlpatterns"]

FLOOR_STREAM = "bench:floor"
ITEMS = 10


@csrf_exempt
def bare(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"success": True, "bytes": len(request.body)})


def floor(request: HttpRequest) -> HttpResponse:
    user_id = request.GET.get("userId", "")
    profile_keys = live_mirror.profile_keys(user_id, "")
    keys = [
        *live_mirror.cache_keys(profile_keys),
        *session_lists.cache_keys(profile_keys),
        f"floor:consent:u:{user_id}",
        f"floor:consent:link:{user_id}",
        f"floor:answer:{user_id}",
    ]
    read = redis_cache().get_many_raw(keys)
    rec_id = str(uuid.uuid4())
    items = [
        {
            "product_id": f"{n:05d}",
            "name": "WHITE HANGING HEART T-LIGHT HOLDER",
            "url": f"https://shop.example/products/{n:05d}",
            "image_url": f"https://shop.example/images/{n:05d}.jpg",
            "price": "2.55",
            "currency": "GBP",
            "position": n + 1,
        }
        for n in range(ITEMS)
    ]
    exposure = {
        "type": "track",
        "event": "Recommendations Served",
        "userId": user_id,
        "properties": {
            "rec_id": rec_id,
            "placement": "home",
            "read": sum(len(value) for value in read if value is not None),
            "products": [{"product_id": i["product_id"], "position": i["position"]} for i in items],
        },
    }
    stream.client().xadd(FLOOR_STREAM, {"b": msgspec.json.encode(exposure)}, maxlen=10_000, approximate=True)
    body = {"rec_id": rec_id, "placement": "home", "items": items, "personalized": True}
    return HttpResponse(msgspec.json.encode(body), content_type="application/json")


urlpatterns = [path("bench/bare", bare), path("bench/floor", floor), *product_urlpatterns]
