"""The one settings module, driven by environment variables.

With no variables at all it runs a laptop demo: DEBUG on, SQLite in ``var/``, a local-memory
cache and Celery tasks executed in-process. Production sets at least ``DEBUG=0``,
``SECRET_KEY``, ``ALLOWED_HOSTS``, ``DATABASE_URL`` and ``REDIS_URL``; see the README.
"""

from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONCE, NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()

DEBUG = env.bool("DEBUG", default=True)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set and DEBUG is off. Set SECRET_KEY to a long random value, "
            "for example the output of: "
            "python -c 'import secrets; print(secrets.token_urlsafe(50))'"
        )
    SECRET_KEY = "django-insecure-development-only-never-use-this-key-in-production-0123"  # noqa: S105 (DEBUG only)

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "import_export",
    "django_celery_beat",
    "axes",
    "csp",
    "tracking",
    "personalization",
    "consent",
    "experiments",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "config.content_security_policy.PagePolicyMiddleware",
    "config.nul_characters.NulCharacterMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "config.api_errors.StoreOutageMiddleware",
    # Last, as django-axes asks: it turns a lockout found during the login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database --------------------------------------------------------------------------------
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web process read while a worker or a loader writes; IMMEDIATE avoids
    # "database is locked" on transactions that read before they write.
    _db.setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )
    if _db["NAME"] != ":memory:":
        VAR_DIR.mkdir(exist_ok=True)
else:
    _db.setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    _db["CONN_HEALTH_CHECKS"] = True
    _db.setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: cache and Celery broker ----------------------------------------------------------
# Unset (or empty): a local-memory cache and Celery tasks run eagerly in the calling process.
REDIS_URL = env.str("REDIS_URL", default="")

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "config.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "pz",
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "pz",
            # Django's default of 300 entries would push visitors' consent states out and send the
            # collector back to the database for each of them.
            "OPTIONS": {"MAX_ENTRIES": 100_000},
        }
    }

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "memory://")
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 30 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 25 * 60
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

# --- Sessions, auth --------------------------------------------------------------------------
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Admin login throttling (django-axes) ------------------------------------------------------
# Without it anyone may try passwords against the admin for ever. Failures are counted per
# username and client address together: an attacker is held to PZ_LOGIN_FAILURE_LIMIT guesses per
# account and address for each cool-off, and cannot lock a staff member out from elsewhere (a lock
# by username alone would let anyone do that; one by address alone would lock an office behind one
# NAT for a colleague's typos). The address is the one the rest of the app uses, truncated like
# every stored address (an IPv6 attacker then cannot step through the /64 they hold). Staff lift a
# lockout in the admin (Axes › Access attempts) or with `manage.py axes_reset_username NAME`.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("PZ_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("PZ_LOGIN_COOLOFF_MINUTES", default=30))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "config.login_guard.login_client_ip"
AXES_LOCKOUT_CALLABLE = "config.login_guard.lockout_response"

# --- Internationalisation --------------------------------------------------------------------
LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files ----------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# --- Security (production defaults switch on when DEBUG is off) ------------------------------
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
# Load balancers probe over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
# The preload directive alone enrols nothing: a domain owner must still submit it to the list.
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
if env.bool("USE_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "strict-origin-when-cross-origin"
X_FRAME_OPTIONS = "DENY"

# --- Content-Security-Policy (django-csp) --------------------------------------------------------
# An injected <script> or inline handler runs nowhere: scripts come from this origin, and the demo
# shop's inline snippets carry the request's nonce. <style> elements need the nonce too (pz.js and
# the banner copy their script's nonce onto the stylesheet they add); style attributes stay allowed,
# since the admin's and the shop's templates set a few and they cannot run code. Images may come from
# any https host, where shops keep product pictures. The JSON APIs and the collector carry no policy:
# a browser never renders them as a page (config.content_security_policy skips them unbuilt).
# PZ_CSP_REPORT_ONLY=1 sends the policy as Content-Security-Policy-Report-Only (to try a stricter one
# first), PZ_CSP_REPORT_URI collects reports.
_CSP_DIRECTIVES = {
    "default-src": [SELF],
    "script-src": [SELF, NONCE],
    "style-src": [SELF, NONCE],
    "style-src-elem": [SELF, NONCE],
    "style-src-attr": [UNSAFE_INLINE],
    "img-src": [SELF, "data:", "https:"],
    "connect-src": [SELF],
    "object-src": [NONE],
    "base-uri": [SELF],
    "form-action": [SELF],
    "frame-ancestors": [NONE],
    "report-uri": env.str("PZ_CSP_REPORT_URI", default="") or None,
}
_CSP = {"EXCLUDE_URL_PREFIXES": ["/v1/", "/api/v1/"], "DIRECTIVES": _CSP_DIRECTIVES}
if env.bool("PZ_CSP_REPORT_ONLY", default=False):
    CONTENT_SECURITY_POLICY_REPORT_ONLY = _CSP
else:
    CONTENT_SECURITY_POLICY = _CSP

# --- API ---------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "config.api_errors.api_exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["config.parsers.JSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Personalization platform API",
    "DESCRIPTION": (
        "Catalog, tracking, recommendation and consent APIs. Server-side endpoints "
        "authenticate with a source's secret key: `Authorization: Bearer <secret key>`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # 3.1, where JSON Schema's "type": "null" is valid: the pydantic models of the catalog and
    # consent APIs describe optional fields that way (3.0 would need "nullable").
    "OAS_VERSION": "3.1.0",
    # The collector is plain Django views; its operations are added to the schema by this hook.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "tracking.collector_schema.collector_paths",
    ],
}

# --- django-import-export ----------------------------------------------------------------------
# The file formats offered are set on the admin classes (personalization.resources.SPREADSHEET_FORMATS).
IMPORT_EXPORT_USE_TRANSACTIONS = True
IMPORT_EXPORT_SKIP_ADMIN_LOG = False
IMPORT_EXPORT_IMPORT_PERMISSION_CODE = "change"
IMPORT_EXPORT_EXPORT_PERMISSION_CODE = "view"

# --- Logging -----------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- The product's own settings ----------------------------------------------------------------
# Currency given to products that arrive without one.
PZ_DEFAULT_CURRENCY = env.str("PZ_DEFAULT_CURRENCY", default="GBP")
# Where the real public data sets live (the demo and the benchmarks read them from here).
PZ_DATASETS_DIR = Path(env.str("PZ_DATASETS_DIR", default=str(BASE_DIR.parent / "shared" / "datasets")))
# The slice of UCI Online Retail the demo loads on an empty database.
PZ_DEMO_SINCE = env.str("PZ_DEMO_SINCE", default="2011-09-01")
# Rows accepted by one catalog API request.
PZ_CATALOG_BATCH_LIMIT = env.int("PZ_CATALOG_BATCH_LIMIT", default=1000)
# The demo shop at /shop/ lets anyone browse as any customer: on by default only with DEBUG.
PZ_DEMO_SHOP = env.bool("PZ_DEMO_SHOP", default=DEBUG)
# The source whose write key the demo shop's pages embed (demo_setup creates it).
PZ_DEMO_SOURCE = "Demo shop"

# --- Privacy and consent -----------------------------------------------------------------------
# Key of the hashes that stand for erased subjects and for ids in cache keys. Changing it makes
# existing suppression entries unrecognisable, so keep it stable (it defaults to SECRET_KEY).
PZ_PRIVACY_HASH_KEY = env.str("PZ_PRIVACY_HASH_KEY", default=SECRET_KEY)
# Purposes a Global Privacy Control signal withdraws (an opt-out of sale and sharing). Add
# "personalization" to treat cross-context behavioural personalization as sharing too.
PZ_GPC_WITHDRAWS = env.list("PZ_GPC_WITHDRAWS", default=["marketing"])
# How long a preference-center link works, and a data export's download link.
PZ_PREFERENCE_LINK_MAX_AGE = env.int("PZ_PREFERENCE_LINK_MAX_AGE", default=30 * 24 * 3600)
PZ_EXPORT_LINK_MAX_AGE = 24 * 3600
# Proxies in front of the app that append to X-Forwarded-For (0: use the socket's address).
PZ_TRUSTED_PROXIES = env.int("PZ_TRUSTED_PROXIES", default=0)
# Raw behavioural data older than this is purged every night.
PZ_RETENTION_DAYS = env.int("PZ_RETENTION_DAYS", default=395)

# --- Event collection ----------------------------------------------------------------------------
# With REDIS_URL the collector appends to a Redis Stream and `manage.py consume_events` processes
# it; set this to process in the request instead (one transport less, slower collector).
PZ_PROCESS_EVENTS_IN_PROCESS = env.bool("PZ_PROCESS_EVENTS_IN_PROCESS", default=False)
# With the stream, the platform's own events (each answer's exposure) wait in the process at most
# this long, and are appended together (see tracking.internal_events).
PZ_INTERNAL_EVENTS_FLUSH_MS = env.int("PZ_INTERNAL_EVENTS_FLUSH_MS", default=50)
# Production consumers refuse a Redis that may lose accepted events (no append-only file, or an
# allkeys-* eviction policy) unless this says the loss is accepted (see config.redis_persistence).
PZ_REDIS_VOLATILE_OK = env.bool("PZ_REDIS_VOLATILE_OK", default=False)

# --- Recommenders ----------------------------------------------------------------------------------
# Where trained models are written (one folder per version, NumPy files that serving processes
# memory-map). Several hosts must share it (e.g. an NFS mount), or train where they serve.
PZ_MODEL_DIR = Path(env.str("PZ_MODEL_DIR", default=str(BASE_DIR / "var" / "models")))
# Versions whose artifacts are kept on disk for rollback (the active one is always kept).
PZ_MODEL_KEEP = env.int("PZ_MODEL_KEEP", default=5)
# A new version serves only if its hold-out NDCG@10 is at least (1 - tolerance) × the active one's.
PZ_MODEL_ACTIVATION_TOLERANCE = env.float("PZ_MODEL_ACTIVATION_TOLERANCE", default=0.0)
# Overrides of the training parameters as JSON, e.g. {"lightfm": {"epochs": 30}, "holdout_days": 7}
# (see personalization.training.DEFAULT_PARAMS).
PZ_RECOMMENDER_PARAMS = env.json("PZ_RECOMMENDER_PARAMS", default={})
# Each known person's best items with no session, computed with every version: serving answers a
# returning customer from them until their first view or cart of the visit (0: always score live).
PZ_PRECOMPUTED_PER_PERSON = env.int("PZ_PRECOMPUTED_PER_PERSON", default=100)
# Score a browsing visitor's list when their session changes (``manage.py score_sessions``, with
# Redis) rather than on each of their requests; this many items are kept (see
# personalization.session_lists).
PZ_SESSION_LISTS = env.bool("PZ_SESSION_LISTS", default=True)
PZ_SESSION_LIST_ITEMS = env.int("PZ_SESSION_LIST_ITEMS", default=200)
# How often a serving process checks which version is active (seconds).
PZ_MODEL_CHECK_SECONDS = env.float("PZ_MODEL_CHECK_SECONDS", default=1.0)
# A click on a recommendation counts the add to cart and the order of that product that follow
# within this many hours (by the same visitor) as the recommendation's.
PZ_ATTRIBUTION_HOURS = env.int("PZ_ATTRIBUTION_HOURS", default=24)
# Threads per process that compute recommendations within a placement's latency budget.
PZ_SERVING_THREADS = env.int("PZ_SERVING_THREADS", default=4)
# Serve first in the request's own thread while the work is memory only (0: always in those threads;
# see personalization/serving/__init__.py).
PZ_SERVING_INLINE = env.bool("PZ_SERVING_INLINE", default=True)
# How often a serving process re-reads the whole catalog it filters candidates by and shows
# (stock, prices, brands, categories, names, links), and how often it reads what changed since
# (see personalization.catalog_snapshot).
PZ_CATALOG_REFRESH_SECONDS = env.float("PZ_CATALOG_REFRESH_SECONDS", default=30.0)
PZ_CATALOG_CHANGES_SECONDS = env.float("PZ_CATALOG_CHANGES_SECONDS", default=1.0)
