"""Settings for the benchmarks: the product's settings plus a bare view to compare against."""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
