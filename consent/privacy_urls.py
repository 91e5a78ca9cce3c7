from django.urls import path

from consent import preference_center

app_name = "privacy"

urlpatterns = [
    path("policy/", preference_center.policy, name="policy"),
    path("p/<str:token>/", preference_center.preferences, name="preferences"),
    path("p/<str:token>/export/", preference_center.export_request, name="export"),
    path("p/<str:token>/erase/", preference_center.erase, name="erase"),
    path("receipts/<str:token>/", preference_center.receipt, name="receipt"),
    path("downloads/<str:token>/", preference_center.export_download, name="export-download"),
]
