"""The preference center: where a person sees and changes their choices, downloads their data, or
has it erased. Server-rendered, no JavaScript needed.

A person reaches it only through an opaque, expiring, revocable link (``consent.links``): every
page takes the subject from the table of links, never from an id in the URL, so no id can be
changed to reach someone else's data.
"""

from collections.abc import Callable
from functools import wraps
from io import BytesIO
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core import signing
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from config.client_address import client_ip
from config.rate_limit import rate_limited
from consent import selectors, services
from consent.exceptions import ConsentError
from consent.links import (
    ExpiredLink,
    InvalidLink,
    export_download_path,
    export_id_from_token,
    policy_url,
    subject_from_preference_token,
)
from consent.models import ConsentRecord
from consent.network import RequestFacts, gpc_signal, request_facts
from consent.subjects import Subject

RECEIPT_SALT = "consent.erasure-receipt"
View = Callable[..., HttpResponse]


def _facts(request: HttpRequest) -> RequestFacts:
    return request_facts(request.META, settings.PZ_TRUSTED_PROXIES)


def _limited(request: HttpRequest, scope: str, limit: int, window: int) -> bool:
    address = client_ip(request.META, settings.PZ_TRUSTED_PROXIES) or "unknown"
    return rate_limited(f"privacy:{scope}:{address}", limit=limit, window_seconds=window)


def _too_many(request: HttpRequest) -> HttpResponse:
    response = render(
        request,
        "privacy/message.html",
        {"title": "Too many requests", "message": "Please wait a minute and try again."},
        status=429,
    )
    response["Retry-After"] = "60"
    return response


def with_subject(view: View) -> View:
    """Resolve the signed link to its subject (or answer why not), rate-limit, honour GPC."""

    @wraps(view)
    def wrapper(request: HttpRequest, token: str, *args: Any, **kwargs: Any) -> HttpResponse:
        if _limited(request, "page", limit=60, window=60):
            return _too_many(request)
        try:
            subject = subject_from_preference_token(token)
        except ExpiredLink:
            context = {
                "title": "This link has expired",
                "message": "Ask the shop for a new link to your privacy choices.",
            }
            return render(request, "privacy/message.html", context, status=410)
        except InvalidLink:
            context = {"title": "This link is not valid", "message": "Use the link exactly as the shop sent it."}
            return render(request, "privacy/message.html", context, status=404)
        if gpc_signal(request.META):
            services.consent_apply_gpc(subject=subject, **_facts(request))
        return view(request, subject, token, *args, **kwargs)

    return never_cache(wrapper)


def policy(request: HttpRequest) -> HttpResponse:
    """The published privacy policy, for shops that keep its text here rather than at their own URL."""
    current = selectors.current_policy_version()
    if current is None:
        raise Http404("No policy is published")
    return render(
        request, "privacy/policy.html", {"policy": current, "purposes": current.purposes.order_by("position")}
    )


@require_http_methods(["GET", "POST"])
@with_subject
def preferences(request: HttpRequest, subject: Subject, token: str) -> HttpResponse:
    if request.method == "POST":
        if _limited(request, "save", limit=20, window=60):
            return _too_many(request)
        summary = selectors.consent_summary(subject)
        wanted = {
            key: request.POST[f"purpose-{key}"] == "allow"
            for key in summary["purposes"]
            if request.POST.get(f"purpose-{key}") in {"allow", "deny"}
        }
        changed = {key: allow for key, allow in wanted.items() if summary["purposes"][key]["allowed"] != allow}
        if changed:
            try:
                services.consent_record(
                    subject=subject,
                    choices=changed,
                    source=ConsentRecord.Source.PREFERENCE_CENTER,
                    gpc=gpc_signal(request.META),
                    **_facts(request),
                )
            except ConsentError as exc:
                messages.error(request, exc.message)
                return redirect("privacy:preferences", token=token)
            messages.success(request, f"Saved: {len(changed)} choice{'s' if len(changed) != 1 else ''} changed.")
        else:
            messages.info(request, "Nothing changed.")
        return redirect("privacy:preferences", token=token)

    summary = selectors.consent_summary(subject)
    purposes = [
        {"purpose": purpose, **summary["purposes"][purpose.key]} for purpose in selectors.purposes_for_display()
    ]
    identities = selectors.identities_for(subject)
    now = timezone.now()
    current_policy = selectors.current_policy_version()
    context = {
        "subject": subject,
        "token": token,
        "purposes": purposes,
        "summary": summary,
        "history": selectors.subject_records(identities).order_by("-recorded_at", "-id")[:100],
        "exports": [
            {"export": e, "download": export_download_path(e.pk) if e.expires_at and e.expires_at > now else None}
            for e in selectors.recent_exports(subject)
        ],
        "gpc": gpc_signal(request.META),
        "gpc_withdraws": settings.PZ_GPC_WITHDRAWS,
        "policy": current_policy,
        "policy_url": policy_url(request, current_policy),
    }
    return render(request, "privacy/preferences.html", context)


@require_POST
@with_subject
def export_request(request: HttpRequest, subject: Subject, token: str) -> HttpResponse:
    if rate_limited(
        f"privacy:export:{selectors.identity_hashes(selectors.identities_for(subject))[0]}",
        limit=3,
        window_seconds=3600,
    ):
        return _too_many(request)
    services.export_request_create(subject=subject, requested_via="preference_center")
    messages.success(request, "Your data is being gathered. Reload this page in a moment to download it.")
    return redirect("privacy:preferences", token=token)


@require_http_methods(["GET", "POST"])
@with_subject
def erase(request: HttpRequest, subject: Subject, token: str) -> HttpResponse:
    if request.method != "POST":
        return render(request, "privacy/erase_confirm.html", {"subject": subject, "token": token})
    if request.POST.get("confirm") != "erase":
        messages.error(request, "Tick the box to confirm that you want your data erased.")
        return redirect("privacy:erase", token=token)
    if _limited(request, "erase", limit=5, window=3600):
        return _too_many(request)
    receipt = services.subject_erase(subject=subject, requested_via="preference_center")
    return redirect("privacy:receipt", token=signing.dumps(str(receipt.pk), salt=RECEIPT_SALT))


@never_cache
def receipt(request: HttpRequest, token: str) -> HttpResponse:
    try:
        receipt_id = signing.loads(token, salt=RECEIPT_SALT, max_age=7 * 24 * 3600)
    except signing.BadSignature as exc:
        raise Http404("No such receipt") from exc
    found = selectors.erasure_receipt(receipt_id)
    if found is None:
        raise Http404("No such receipt")
    return render(request, "privacy/receipt.html", {"receipt": found})


@never_cache
def export_download(request: HttpRequest, token: str) -> HttpResponseBase:
    if _limited(request, "download", limit=20, window=60):
        return _too_many(request)
    try:
        export_id = export_id_from_token(token)
    except ExpiredLink:
        context = {"title": "This download has expired", "message": "Ask for a new copy on your privacy page."}
        return render(request, "privacy/message.html", context, status=410)
    except InvalidLink as exc:
        raise Http404("No such export") from exc
    content = selectors.export_content(export_id)
    if content is None:
        raise Http404("No such export")
    return FileResponse(BytesIO(content), content_type="application/json", as_attachment=True, filename="my-data.json")
