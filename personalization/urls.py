from django.urls import path

from personalization import views

app_name = "catalog"

urlpatterns = [
    path("products", views.ProductListView.as_view(), name="product-list"),
    path("products/batch", views.ProductBatchView.as_view(), name="product-batch"),
    path("products/deactivate", views.ProductDeactivateView.as_view(), name="product-deactivate"),
    path("products/<str:sku>", views.ProductDetailView.as_view(), name="product-detail"),
    path("categories", views.CategoryListView.as_view(), name="category-list"),
]
