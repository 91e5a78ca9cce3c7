from django.urls import path

from personalization import shop_views

app_name = "shop"

urlpatterns = [
    path("", shop_views.home, name="home"),
    path("c/<path:slug>/", shop_views.category, name="category"),
    path("p/<str:sku>/", shop_views.product, name="product"),
    path("search/", shop_views.search, name="search"),
    path("cart/", shop_views.cart, name="cart"),
    path("cart/add/", shop_views.cart_add, name="cart-add"),
    path("cart/update/", shop_views.cart_update, name="cart-update"),
    path("checkout/", shop_views.checkout, name="checkout"),
    path("orders/<str:order_id>/", shop_views.order_confirmation, name="order"),
    path("customers/", shop_views.customers, name="customers"),
    path("customers/browse-as/", shop_views.browse_as, name="browse-as"),
    path("account/", shop_views.account, name="account"),
    path("privacy/", shop_views.privacy, name="privacy"),
]
