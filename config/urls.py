from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from config.health import healthz
from personalization.serving_views import RecommendationsView

admin.site.site_header = "Personalization platform"
admin.site.site_title = "Personalization admin"
admin.site.index_title = "Catalog, customers and campaigns"

urlpatterns = [
    # First: the collector answers most of the requests, and Django tries the patterns in order.
    path("v1/", include("tracking.collector_urls")),
    path("", RedirectView.as_view(url="/shop/" if settings.PZ_DEMO_SHOP else "/admin/", permanent=False)),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up script from a URL of its own: no inline script,
    # so the page works under the Content-Security-Policy.
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="api-schema", template_name="api_docs/swagger_ui.html"),
        name="api-docs",
    ),
    path("api/v1/catalog/", include("personalization.urls")),
    path("api/v1/recommendations", RecommendationsView.as_view(), name="recommendations"),
    path("api/v1/consent/", include("consent.urls")),
    path("privacy/", include("consent.privacy_urls")),
]
if settings.PZ_DEMO_SHOP:
    urlpatterns.append(path("shop/", include("personalization.shop_urls")))

handler404 = "config.api_errors.handler404"
handler500 = "config.api_errors.handler500"
