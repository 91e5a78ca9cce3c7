"""``manage.py evaluate`` on a slice of the real Online Retail file, cut at test time."""

import gzip
import json
from pathlib import Path

import pytest
from django.core.management import call_command

from personalization.models import TunedParameters
from personalization.recommenders.offline import BASELINES
from personalization.training import COMPONENTS
from tests.conftest import write_online_retail

pytestmark = pytest.mark.django_db


@pytest.fixture
def november(tmp_path: Path, online_retail_path: Path) -> None:
    """The invoices of November and December 2011, loaded with the consent the import asserts."""
    with gzip.open(online_retail_path, "rt", encoding="utf-8") as handle:
        next(handle)
        rows = [line.rstrip("\n") for line in handle if ",2011-11-" in line or ",2011-12-" in line]
    call_command("load_online_retail", str(write_online_retail(tmp_path / "slice.csv.gz", rows)), "--no-progress")


def test_evaluate_tunes_on_validation_and_scores_the_test_window_once(november: None, capsys) -> None:
    call_command("evaluate", "--trials", "1", "--blend-trials", "3", "--json", "--save")
    report = json.loads(capsys.readouterr().out)
    assert set(report["test"]) == {*COMPONENTS, "hybrid", *BASELINES}
    for name, protocols in report["test"].items():
        assert set(protocols) == {"new-items", "repeat"}, name
        for metrics in protocols.values():
            assert metrics["people"] > 100, name
            for key in ("precision", "recall", "ndcg", "map", "coverage"):
                assert 0.0 <= metrics[key] <= 1.0, (name, key)
    # the windows: two weeks of test after two weeks of validation, ending with the data
    assert report["end"] - report["test_since"] == 14 * 86_400
    assert report["test_since"] - report["validation_since"] == 14 * 86_400
    assert report["session"]["with_session"]["people"] == report["session"]["without_session"]["people"] > 100
    assert set(report["tuned"]["hybrid"]["weights"]) == {"repeat", "new_items"}
    saved = TunedParameters.objects.get()
    assert saved.params["hybrid"] == report["tuned"]["hybrid"]
    # the popular baseline is the same list for everyone: its coverage is ten items of the catalog
    assert report["test"]["popular"]["repeat"]["coverage"] == pytest.approx(10 / report["items"])

    call_command("evaluate", "--trials", "0", "--blend-trials", "1")  # as a table
    out = capsys.readouterr().out
    for line in ("Protocol new-items", "Protocol repeat", "baseline: implicit ALS", "baseline: most popular"):
        assert line in out
    assert out.count("best of ours:") == 2 and "Next basket lines" in out


def test_evaluate_without_data_says_what_to_do() -> None:
    with pytest.raises(Exception, match="no interactions to evaluate"):
        call_command("evaluate")
