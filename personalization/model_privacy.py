"""What trained models hold about people, in the personal-data registry.

A model version's files hold, per person (named by a keyed hash, never by id), what the model
knows they did, their country, their LightFM vector and their buy-again history. Export lists it
for every version on disk; erasure zeroes it in every version and takes the person out of the
index, and serving processes reload the changed files. (An erased person is also suppressed in
the consent app, so they get nothing personalized even from a process that has not reloaded yet.)
"""

from pathlib import Path
from typing import Any

from consent.selectors import subject_hash
from consent.subjects import Identities
from personalization import model_store, selectors, services


def _hashes(identities: Identities) -> list[str]:
    return [subject_hash("user", u) for u in sorted(identities.user_ids)] + [
        subject_hash("anonymous", a) for a in sorted(identities.anonymous_ids)
    ]


def subject_export(identities: Identities) -> dict[str, Any]:
    versions = {}
    for version in selectors.model_versions_on_disk():
        directory = Path(version.artifact_path)
        if directory.is_dir():
            held = model_store.artifacts_export(directory, _hashes(identities))
            if held is not None:
                versions[str(version.pk)] = held
    return {"model_versions": versions}


def subject_erase(identities: Identities) -> dict[str, int]:
    return {"people removed from model versions": services.model_versions_forget(subject_hashes=_hashes(identities))}
