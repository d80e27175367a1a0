"""What the bot's memory holds only when it needs it, checked in a fresh interpreter (this one has imported
everything the other tests use): the resident size itself is measured by ``make bench``, not here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    answer: dict[str, object] = json.loads(result.stdout.splitlines()[-1])
    return answer


def test_serving_on_sqlite_imports_neither_psycopg_nor_pillow() -> None:
    """psycopg (≈ 7 MB) is for PostgreSQL only, Pillow (≈ 4 MB) for a chart once one is asked for."""
    loaded = _run(
        "import json, sys, bot.__main__, bot.app\n"
        "print(json.dumps({'loaded': sorted({m.split('.')[0] for m in sys.modules} & {'psycopg', 'psycopg_pool', "
        "'PIL'}) + sorted(m for m in sys.modules if m == 'bot.storage.postgres')}))"
    )
    assert loaded == {"loaded": []}


def test_a_graph_answer_loads_only_the_models_it_names() -> None:
    """msgraph-sdk's Entity deserializer would import all 1,200 Entity subclasses (≈ 30 MB) on the first answer."""
    answer = _run(
        """
import json, sys
from kiota_serialization_json.json_parse_node_factory import JsonParseNodeFactory
from msgraph.generated.models.entity import Entity
from msgraph.generated.models.subscription import Subscription
from bot.graph.client import slim_entity_deserializers

library = Entity.get_field_deserializers
slim_entity_deserializers()
models = lambda: sum(1 for m in sys.modules if m.startswith("msgraph.generated.models."))
before = models()
body = {"@odata.type": "#microsoft.graph.subscription", "id": "sub-1", "resource": "users/a/messages"}
node = JsonParseNodeFactory().get_root_parse_node("application/json", json.dumps(body).encode())
parsed = node.get_object_value(Subscription)
after = models()
print(json.dumps({
    "added": after - before,
    "parsed": [parsed.id, parsed.odata_type, parsed.resource],
    "fields": sorted(Entity().get_field_deserializers()) == sorted(library(Entity())),
}))
"""
    )
    assert answer["parsed"] == ["sub-1", "#microsoft.graph.subscription", "users/a/messages"]
    assert answer["fields"] is True  # the same fields as the SDK's own deserializer
    assert isinstance(answer["added"], int) and answer["added"] < 20, answer
