from django.urls import path

from tracking import collector

urlpatterns = [
    path("pixel/<str:kind>", collector.pixel, name="collector-pixel"),
    path("<str:kind>", collector.collect, name="collector"),
]
