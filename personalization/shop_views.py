"""The demo shop: a small storefront over the catalog, to see the platform the way a shopper does.

Server-rendered, no JavaScript needed. pz.js renders the recommendation widgets in each page's
``pz-slot`` elements (``data-pz-placement`` names the placement): the pages hand it the visitor's
anonymous id and, when browsing as a customer, their user id with the ``userToken`` that lets a
browser ask for that customer's recommendations.
"""

import uuid
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.cache import cache
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from consent.network import gpc_signal, request_facts
from consent.services import consent_apply_gpc, preference_link_issue, subject_link
from consent.subjects import Subject
from personalization import selectors
from personalization.shop_cart import MAX_QUANTITY, Cart
from tracking.authentication import user_token
from tracking.models import Order
from tracking.selectors import (
    customer_get,
    customer_orders,
    customers_with_most_orders,
    order_with_lines,
    source_by_name,
)
from tracking.services import OrderIn, OrderLineIn, order_record

BROWSE_AS_KEY = "pz_user_id"
ANONYMOUS_ID_KEY = "pz_anonymous_id"
PLACED_ORDERS_KEY = "pz_orders"
PAGE_SIZE = 24


def _anonymous_id(request: HttpRequest) -> str:
    if ANONYMOUS_ID_KEY not in request.session:
        request.session[ANONYMOUS_ID_KEY] = str(uuid.uuid4())
    return str(request.session[ANONYMOUS_ID_KEY])


def _departments() -> list[Any]:
    departments = cache.get("shop:departments")
    if departments is None:
        departments = [
            {"name": c.name, "slug": c.slug, "count": c.active_products}  # type: ignore[attr-defined]
            for c in selectors.categories_with_active_product_counts(depth=0)
            if c.active_products  # type: ignore[attr-defined]
        ]
        cache.set("shop:departments", departments, 300)
    return departments


def _subject(request: HttpRequest) -> Subject:
    return Subject(user_id=request.session.get(BROWSE_AS_KEY, ""), anonymous_id=_anonymous_id(request))


def _render(request: HttpRequest, template: str, context: dict[str, Any], status: int = 200) -> HttpResponse:
    subject = _subject(request)
    if gpc_signal(request.META):  # every request with Sec-GPC: 1 is an opt-out signal
        consent_apply_gpc(subject=subject, **request_facts(request.META, settings.PZ_TRUSTED_PROXIES))
    source = source_by_name(name=settings.PZ_DEMO_SOURCE)
    browsing_as = customer_get(user_id=subject.user_id) if subject.user_id else None
    base = {
        "departments": _departments(),
        "cart_count": Cart(request.session).count,
        "browsing_as": browsing_as,
        "anonymous_id": subject.anonymous_id,
        "consent_write_key": source.write_key if source else None,
        # Lets the widgets ask for this customer's recommendations: a browser cannot compute it.
        "user_token": user_token(source, browsing_as.user_id) if source and browsing_as else "",
        # The widgets link to the shop's own product pages.
        "product_url_pattern": reverse("shop:product", kwargs={"sku": "SKU"}).replace("SKU", "{product_id}"),
    }
    return render(request, template, {**base, **context}, status=status)


def privacy(request: HttpRequest) -> HttpResponse:
    """The footer's "Your privacy choices": a fresh link to this visitor's preference center."""
    path, _ = preference_link_issue(subject=_subject(request))
    return redirect(path)


def _quantity(raw: str | None) -> int | None:
    try:
        quantity = int(raw or "")
    except ValueError:
        return None
    return quantity if 0 <= quantity <= MAX_QUANTITY else None


def home(request: HttpRequest) -> HttpResponse:
    bestsellers = cache.get("shop:bestsellers")
    if bestsellers is None:
        bestsellers = selectors.bestsellers(limit=12)
        cache.set("shop:bestsellers", bestsellers, 600)
    return _render(request, "shop/home.html", {"bestsellers": bestsellers})


def category(request: HttpRequest, slug: str) -> HttpResponse:
    node = selectors.category_get_by_slug(slug=slug)
    if node is None:
        raise Http404("No such category")
    sort = request.GET.get("sort", "popular")
    page = Paginator(selectors.shop_products(category=node, sort=sort), PAGE_SIZE).get_page(request.GET.get("page"))
    ancestors = list(selectors.category_list().filter(path__in=_ancestor_paths(node.path)))
    children = list(node.children.order_by("name"))
    return _render(
        request,
        "shop/category.html",
        {"category": node, "ancestors": ancestors, "children": children, "page": page, "sort": sort},
    )


def _ancestor_paths(path: str) -> list[str]:
    parts = path.split(" > ")
    return [" > ".join(parts[:n]) for n in range(1, len(parts))]


def search(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:100]
    products = selectors.shop_products(query=query) if query else []
    page = Paginator(products, PAGE_SIZE).get_page(request.GET.get("page"))
    return _render(request, "shop/search.html", {"query": query, "page": page})


def product(request: HttpRequest, sku: str) -> HttpResponse:
    item = selectors.product_get(sku=sku)
    if item is None or not item.is_active:
        raise Http404("No such product")
    ancestors = [*_ancestor_paths(item.category.path), item.category.path] if item.category else []
    return _render(
        request,
        "shop/product.html",
        {"product": item, "ancestors": list(selectors.category_list().filter(path__in=ancestors))},
    )


@require_POST
def cart_add(request: HttpRequest) -> HttpResponse:
    sku = request.POST.get("sku", "")
    quantity = _quantity(request.POST.get("quantity", "1"))
    item = selectors.product_get(sku=sku)
    if item is None or not item.is_active or not item.in_stock:
        messages.error(request, "That product cannot be bought at the moment.")
        return redirect("shop:cart")
    if not quantity:
        messages.error(request, f"The quantity must be a whole number from 1 to {MAX_QUANTITY}.")
        return redirect("shop:product", sku=sku)
    Cart(request.session).add(sku, quantity)
    messages.success(request, f"Added {quantity} × {item.name} to the cart.")
    return redirect("shop:cart")


@require_POST
def cart_update(request: HttpRequest) -> HttpResponse:
    quantity = _quantity(request.POST.get("quantity"))
    if quantity is None:
        messages.error(request, f"The quantity must be a whole number from 0 to {MAX_QUANTITY}.")
    else:
        Cart(request.session).set(request.POST.get("sku", ""), quantity)
    return redirect("shop:cart")


def cart(request: HttpRequest) -> HttpResponse:
    lines = Cart(request.session).lines()
    total = sum((line.total for line in lines), start=0)
    return _render(request, "shop/cart.html", {"lines": lines, "total": total})


def checkout(request: HttpRequest) -> HttpResponse:
    basket = Cart(request.session)
    lines = basket.lines()
    if not lines:
        messages.info(request, "Your cart is empty.")
        return redirect("shop:cart")
    if request.method != "POST":
        total = sum((line.total for line in lines), start=0)
        return _render(request, "shop/checkout.html", {"lines": lines, "total": total})
    order = order_record(
        order=OrderIn(
            order_id=f"shop-{uuid.uuid4().hex[:16]}",
            placed_at=timezone.now(),
            user_id=request.session.get(BROWSE_AS_KEY),
            anonymous_id=_anonymous_id(request),
            currency=lines[0].product.currency,
            lines=[
                OrderLineIn(line.product.sku, line.product.name, line.quantity, line.product.price) for line in lines
            ],
        ),
        origin=Order.Origin.SHOP,
    )
    basket.clear()
    request.session[PLACED_ORDERS_KEY] = [*request.session.get(PLACED_ORDERS_KEY, [])[-19:], order.order_id]
    cache.delete("shop:bestsellers")
    return redirect("shop:order", order_id=order.order_id)


def order_confirmation(request: HttpRequest, order_id: str) -> HttpResponse:
    # Only the session that placed an order can see it: order ids in URLs are not secrets to rely on alone.
    if order_id not in request.session.get(PLACED_ORDERS_KEY, []):
        raise Http404("No such order")
    order = order_with_lines(order_id=order_id)
    if order is None:
        raise Http404("No such order")
    return _render(request, "shop/order.html", {"order": order})


def customers(request: HttpRequest) -> HttpResponse:
    return _render(request, "shop/customers.html", {"customers": customers_with_most_orders(limit=24)})


@require_POST
def browse_as(request: HttpRequest) -> HttpResponse:
    user_id = request.POST.get("user_id", "").strip()
    if not user_id:
        request.session.pop(BROWSE_AS_KEY, None)
        messages.info(request, "You are browsing as an anonymous visitor.")
        return redirect("shop:home")
    if customer_get(user_id=user_id) is None:
        messages.error(request, f"There is no customer {user_id}.")
        return redirect("shop:customers")
    request.session[BROWSE_AS_KEY] = user_id
    # Browsing as a customer is the demo's log-in: the visitor's anonymous id now belongs to them.
    subject_link(anonymous_id=_anonymous_id(request), user_id=user_id, source="demo_shop_login")
    messages.success(request, f"You are browsing as customer {user_id}.")
    return redirect("shop:account")


def account(request: HttpRequest) -> HttpResponse:
    user_id = request.session.get(BROWSE_AS_KEY)
    if not user_id:
        return redirect("shop:customers")
    return _render(request, "shop/account.html", {"orders": list(customer_orders(user_id=user_id, limit=20))})
