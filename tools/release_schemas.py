"""Freeze this release's wire contract: ``python tools/release_schemas.py VERSION`` (``make release-schemas``).

Copies ``schemas/*.avsc`` and ``schemas/types/*.avsc`` to ``schemas/released/VERSION/`` (records written with them
stay readable by every later release, docs/evolution.md) and writes golden bytes, one record of every type, to
``tests/golden/VERSION/`` (``<Record>.bin`` as written, ``<Record>.json`` what it must decode to; the suite decodes
them forever). Refuses to overwrite an existing release.
"""

from __future__ import annotations

import base64
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "unit" / "schemas"))  # schema_samples: a filled record from a schema

from schema_samples import SCHEMAS, sample  # noqa: E402

from schemas import Codec  # noqa: E402


def jsonable(value: object) -> object:
    """The decoded record as JSON: bytes as {"$bytes": base64}."""
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value


def realistic(value: object, field: str = "") -> object:
    """A schema sample with its payloads made real: JSON call arguments for ``args``, a JSON value elsewhere."""
    if isinstance(value, dict) and set(value) == {"codec", "data"}:
        data = b'{"args":[1,"two"],"kwargs":{"three":3.0}}' if field == "args" else b'{"answer":[42,"x"]}'
        return {"codec": "json", "data": data}
    if isinstance(value, dict):
        return {k: realistic(v, k) for k, v in value.items()}
    return value


def main(version: str) -> int:
    """Freeze the schemas as ``version`` and write its golden bytes; 0 on success, 1 if it exists already."""
    released = ROOT / "schemas" / "released" / version
    golden = ROOT / "tests" / "golden" / version
    if released.exists() or golden.exists():
        print(f"release {version} exists already: {released} / {golden}", file=sys.stderr)
        return 1
    (released / "types").mkdir(parents=True)
    for path in sorted((ROOT / "schemas").glob("*.avsc")):
        shutil.copyfile(path, released / path.name)
    for path in sorted((ROOT / "schemas" / "types").glob("*.avsc")):
        shutil.copyfile(path, released / "types" / path.name)
    golden.mkdir(parents=True)
    codec = Codec()
    for name in sorted(SCHEMAS):
        record = realistic(sample(name, fill=True))
        assert isinstance(record, dict)
        data = codec.encode(name, record)
        (golden / f"{name}.bin").write_bytes(data)
        decoded = codec.decode(data).record
        (golden / f"{name}.json").write_text(json.dumps(jsonable(decoded), indent=1, sort_keys=True) + "\n")
    print(f"released {version}: {len(SCHEMAS)} record types -> {released}, golden bytes -> {golden}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python tools/release_schemas.py VERSION", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
