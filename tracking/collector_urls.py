from django.urls import path

from tracking import collector

urlpatterns = [
    path("<str:kind>", collector.collect, name="collector"),  # no "/" in it: pixel/… is not one
    path("pixel/<str:kind>", collector.pixel, name="collector-pixel"),
]
