import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_wsgi_application()

# Django, the apps and their imports leave ~200,000 long-lived objects that every full collection
# walks: ~100 ms on a busy 2-core machine, during which each request queued on the worker waits
# (the collector's batches, which allocate much, set one off every few seconds). Frozen, they are
# left out of collections; what requests allocate is collected as before.
gc.freeze()
