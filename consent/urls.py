from django.urls import path

from consent import views

app_name = "consent"

urlpatterns = [
    path("config", views.ConsentConfigView.as_view(), name="config"),
    path("choices", views.ConsentChoicesView.as_view(), name="choices"),
    path("gpc", views.ConsentGpcView.as_view(), name="gpc"),
    path("subjects/state", views.SubjectStateView.as_view(), name="subject-state"),
    path("subjects/links", views.SubjectLinkView.as_view(), name="subject-link"),
    path("preference-links", views.PreferenceLinkView.as_view(), name="preference-link"),
]
