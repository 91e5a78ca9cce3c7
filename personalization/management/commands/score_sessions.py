"""``python manage.py score_sessions``: score browsing visitors' lists as their sessions change."""

import logging
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import close_old_connections
from threadpoolctl import threadpool_limits

from config.redis_persistence import redis_persistence_problem
from config.stopping import stop_on_signal
from config.store_outages import Outage, is_store_error, retried
from personalization.model_store import active_model
from personalization.services.session_lists import session_lists_renew, session_lists_score_changed
from tracking import stream

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = (
        "Score the lists of visitors whose session (recent views, cart) the consumers changed, ahead of their "
        "next request (see personalization.session_lists). One process is enough for most shops; more may run."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch", type=int, default=256, help="Profiles taken at a time.")
        parser.add_argument("--idle-ms", type=int, default=50, help="How long to wait when nothing has changed.")
        parser.add_argument("--exit-when-idle", action="store_true", help="Stop once nothing is waiting.")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.REDIS_URL:
            raise CommandError("REDIS_URL is not set: without Redis every list is scored when it is asked for.")
        if not settings.PZ_SESSION_LISTS:
            raise CommandError("PZ_SESSION_LISTS is off: serving scores every list when it is asked for.")
        # Small batches (the visitors of the last 50 ms): BLAS's threads would only hand work to
        # each other and spin between calls, on cores the serving workers need (as config/wsgi.py).
        threadpool_limits(1, "blas")
        stopping = stop_on_signal()
        outage = Outage(logger, "score_sessions")
        retried(
            lambda: redis_persistence_problem(stream.client(), process="score_sessions"), outage=outage, stop=stopping
        )
        self.stdout.write("Scoring visitors' lists as their sessions change (Ctrl-C stops).")
        taken = 0
        renewed: tuple[int, int] | None = None  # the model this process last renewed the lists for
        while not stopping():
            try:
                model = active_model()
                if model is not None and (model.version_id, model.revision) != renewed:
                    noted = session_lists_renew(model)
                    renewed = (model.version_id, model.revision)
                    if noted:
                        self.stdout.write(f"Model {model.version_id} (revision {model.revision}): {noted:,} to renew.")
                count = session_lists_score_changed(batch=options["batch"])
            except Exception as exc:  # its visitors are scored live when they ask; go on with the rest
                if is_store_error(exc):  # Redis or the database is down: wait for it, saying so once
                    outage.wait(exc, stop=stopping)
                    continue
                logger.exception("a batch of sessions could not be scored")
                self.stderr.write(f"A batch of sessions could not be scored ({exc!r}); its visitors are scored live.")
                close_old_connections()  # a connection the database dropped is opened again
                count = 0
                time.sleep(1)
            outage.over()
            taken += count
            if not count:
                if options["exit_when_idle"]:
                    break
                time.sleep(options["idle_ms"] / 1000)
        self.stdout.write(f"Stopped: {taken:,} sessions scored.")
