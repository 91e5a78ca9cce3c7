import gc
import os

from django.core.wsgi import get_wsgi_application
from threadpoolctl import threadpool_limits

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_wsgi_application()

# The active model and the catalog, loaded before the first request rather than in it, and from
# then on read again by a thread of the worker's own, never by a request.
from personalization.catalog_snapshot import keep_fresh  # noqa: E402 (needs the application set up)
from personalization.serving import warm_up  # noqa: E402

warm_up()
keep_fresh()

from config.redis_persistence import redis_persistence_log  # noqa: E402

redis_persistence_log(process="web worker")

# Django, the apps and their imports leave ~200,000 long-lived objects that every full collection
# walks: ~100 ms on a busy 2-core machine, during which each request queued on the worker waits
# (the collector's batches, which allocate much, set one off every few seconds). Frozen, they are
# left out of collections; what requests allocate is collected as before.
gc.freeze()

# A request scores one visitor: BLAS products of a few thousand numbers, where OpenBLAS's threads
# only add hand-offs, and several request threads sharing its one pool wait on each other (with a
# session, 400 against 620 answers/s on two cores, bench/serve.py). Training runs in the Celery
# workers, which keep every BLAS thread.
threadpool_limits(1, "blas")
