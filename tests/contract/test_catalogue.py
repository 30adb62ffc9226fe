"""The topic catalogue: schemas, the README table and the code agree."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest
from jsonschema import Draft202012Validator

from streams.deadletter import dead_letter_record
from streams.settings import Settings
from streams.topics import topic_specs
from streams.wire import SCHEMA_DIR, first_error

SETTINGS = Settings()
TOPICS = [spec.name for spec in topic_specs(SETTINGS)]


@pytest.mark.parametrize("topic", TOPICS)
def test_every_topic_has_a_valid_versioned_schema(topic: str) -> None:
    path = SCHEMA_DIR / f"{topic}.schema.json"
    schema = orjson.loads(path.read_bytes())
    Draft202012Validator.check_schema(schema)
    version = topic.rsplit(".", 1)[1]
    assert schema["$id"].endswith(f"{topic}.schema.json") and version.startswith("v")


def test_readme_catalogue_matches_code() -> None:
    readme = (SCHEMA_DIR / "README.md").read_text()
    rows = dict(re.findall(r"^\| `(sentinelle\.[a-z]+\.v\d+)` \|.*\| (\**\w+\**) \|[^|]*\|$",
                           readme, flags=re.M))
    assert sorted(rows) == sorted(TOPICS)
    for spec in topic_specs(SETTINGS):
        assert rows[spec.name].strip("*") == spec.configs["cleanup.policy"]
        assert spec.partitions == SETTINGS.kafka.partitions


def test_no_stray_schema_files() -> None:
    names = {p.name.removesuffix(".schema.json") for p in Path(SCHEMA_DIR).glob("*.schema.json")}
    assert names == set(TOPICS)


def test_dead_letter_record_matches_schema() -> None:
    record = dead_letter_record(stage="ingest", reason="bad_json", detail="x",
                                source_topic="sentinelle.outbound.v1", key=None, value=b"{",
                                partition=0, offset=7)
    assert first_error("sentinelle.deadletter.v1", record) is None


def test_env_example_lists_every_setting() -> None:
    from pydantic import BaseModel

    def names(model: BaseModel, prefix: str) -> set[str]:
        found: set[str] = set()
        for name in type(model).model_fields:
            value = getattr(model, name)
            key = f"{prefix}{name.upper()}"
            found |= names(value, key + "__") if isinstance(value, BaseModel) else {key}
        return found

    example = (SCHEMA_DIR.parent / ".env.example").read_text()
    listed = set(re.findall(r"^(SENTINELLE_[A-Z_]+)=", example, flags=re.M))
    assert listed == names(SETTINGS, "SENTINELLE_")
