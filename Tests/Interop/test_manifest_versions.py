"""Manifest versions (issue 18, item 3): imgconv writes version 2, whose tensors carry `xxh3` (the
chunked XXH3-128 that Schemas/manifest.schema.json defines, recomputed here with the `xxhash`
package), and still reads version 1, whose tensors carry `sha256`: Tests/Fixtures/manifest-v1
holds an .npz and the parts of a sharded run written by the imgconv before version 2
(make_v1.sh there says how)."""

from __future__ import annotations

import copy
import filecmp
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import interop_helpers as H

V1 = H.FIXTURES / "manifest-v1"
OPTIONS = ["--split", "train=0.5,test=0.5", "--seed", "3", "--shuffle"]


@pytest.fixture
def v1(tmp_path) -> Path:
    """A copy of the fixture folder (the tests write beside its files)."""
    if not (V1 / "v1.npz").is_file():
        pytest.skip("Tests/Fixtures/manifest-v1 is missing")
    dst = tmp_path / "v1"
    shutil.copytree(V1, dst)
    return dst


def _arrays(npz: Path) -> dict[str, np.ndarray]:
    with np.load(npz) as z:
        return {name: z[name] for name in z.files}


def _check_digests(manifest: dict, arrays: dict[str, np.ndarray]) -> None:
    """Every tensor record's checksum, of its manifest's version, equals the array's."""
    assert {t["name"] for t in manifest["tensors"]} == set(arrays)
    for t in manifest["tensors"]:
        recorded, computed = H.tensor_digest(manifest, t, np.ascontiguousarray(arrays[t["name"]]).tobytes())
        assert recorded == computed, t["name"]


def test_the_v1_fixture_is_version_1_and_verifies(run, v1):
    m = H.load_json(H.npz_manifest_path(v1 / "v1.npz"))
    assert m["version"] == 1 and all("sha256" in t and "xxh3" not in t for t in m["tensors"])
    assert H.validate_against_schema(m)
    _check_digests(m, _arrays(v1 / "v1.npz"))
    res = run(["verify", v1 / "v1.npz"])
    assert "SHA-256 match" in res.stdout
    run(["verify", v1 / "v1.npz", "--against", v1 / "src"])
    for k in range(2):
        run(["verify", v1 / "parts" / f"part-{k:05d}-of-00002.npz"])

    # A checksum that is not the data's: named, with its algorithm.
    bad = copy.deepcopy(m)
    bad["tensors"][0]["sha256"] = hashlib.sha256(b"other").hexdigest()
    H.npz_manifest_path(v1 / "v1.npz").write_text(json.dumps(bad))
    res = run(["verify", v1 / "v1.npz"], expect_rc=H.EX_DATAERR)
    H.assert_one_line_error(res, bad["tensors"][0]["name"], "SHA-256 of the data is")


def test_new_outputs_are_version_2_with_the_chunked_xxh3(run, v1, tmp_path):
    out = tmp_path / "v2.npz"
    run(["to-npz", v1 / "src", out, "-q", *OPTIONS])
    m = H.load_json(H.npz_manifest_path(out))
    assert m["version"] == 2 and all("xxh3" in t and "sha256" not in t for t in m["tensors"])
    assert all(len(t["xxh3"]) == 32 for t in m["tensors"])
    assert H.validate_against_schema(m)
    arrays = _arrays(out)
    _check_digests(m, arrays)
    # The same data as the version 1 file; only the checksums and the version differ.
    old = H.load_json(H.npz_manifest_path(v1 / "v1.npz"))
    for name, arr in _arrays(v1 / "v1.npz").items():
        assert arrays[name].dtype == arr.dtype and np.array_equal(arrays[name], arr), name
    strip = lambda doc: {k: v for k, v in doc.items() if k not in ("version", "tensors", "output", "source")}
    assert strip(m) == strip(old)
    res = run(["verify", out])
    assert "XXH3-128 (of 4 MiB chunks) match" in res.stdout

    bad = copy.deepcopy(m)
    bad["tensors"][1]["xxh3"] = "0" * 32
    H.npz_manifest_path(out).write_text(json.dumps(bad))
    res = run(["verify", out], expect_rc=H.EX_DATAERR)
    H.assert_one_line_error(res, bad["tensors"][1]["name"], "XXH3-128", "0" * 32)


def test_the_schema_ties_each_version_to_its_checksum(v1, tmp_path):
    m1 = H.load_json(H.npz_manifest_path(v1 / "v1.npz"))
    import jsonschema
    for version, drop, add in ((1, "sha256", "xxh3"), (2, None, None), (2, "sha256", None), (1, None, "xxh3"), (3, None, None)):
        doc = copy.deepcopy(m1)
        doc["version"] = version
        for t in doc["tensors"]:
            if drop:
                del t[drop]
            if add:
                t[add] = "ab" * 16
        with pytest.raises(jsonschema.ValidationError):
            H.validate_against_schema(doc)


def test_a_version_2_manifest_with_sha256_is_refused_by_every_reader(run, v1):
    """Manifest.decode: the version says which member a tensor record must have."""
    path = H.npz_manifest_path(v1 / "v1.npz")
    m = H.load_json(path)
    m["version"] = 2
    path.write_text(json.dumps(m))
    for args in (["verify", v1 / "v1.npz"], ["inspect", v1 / "v1.npz"], ["convert", v1 / "v1.npz", v1 / "x.h5"]):
        res = run(args, expect_rc=H.EX_DATAERR)
        H.assert_one_line_error(res, "v1.npz", "has a 'sha256'", "version 2")
    m["version"] = 3
    path.write_text(json.dumps(m))
    res = run(["verify", v1 / "v1.npz"], expect_rc=H.EX_DATAERR)
    H.assert_one_line_error(res, "manifest version 3 is not one this imgconv reads")


def test_convert_of_a_version_1_file_writes_version_2(run, v1, tmp_path):
    for out, extra in ((tmp_path / "c.npz", []), (tmp_path / "c.h5", []), (tmp_path / "c", ["--to", "npy"])):
        run(["convert", v1 / "v1.npz", out, "-q", *extra])
        run(["verify", out])
    m = H.load_json(H.npz_manifest_path(tmp_path / "c.npz"))
    assert m["version"] == 2 and H.validate_against_schema(m)
    _check_digests(m, _arrays(tmp_path / "c.npz"))
    assert m["files"] == H.load_json(H.npz_manifest_path(v1 / "v1.npz"))["files"]


def test_merge_of_version_1_parts_equals_a_one_machine_run(run, v1, tmp_path):
    """Parts written before version 2 are verified by their own SHA-256 while merge copies them; the
    merged output is this imgconv's: byte for byte a one-machine run's, manifest version 2."""
    merged, single = tmp_path / "merged" / "out.npz", tmp_path / "single" / "out.npz"
    merged.parent.mkdir()
    single.parent.mkdir()
    res = run(["merge", "--check", v1 / "parts"])
    assert "all 2 parts" in res.stdout
    run(["merge", v1 / "parts", merged, "-q"], cwd=v1)
    run(["to-npz", "src", single, "-q", *OPTIONS], cwd=v1)
    assert filecmp.cmp(merged, single, shallow=False)
    assert filecmp.cmp(H.npz_manifest_path(merged), H.npz_manifest_path(single), shallow=False)
    assert H.load_json(H.npz_manifest_path(merged))["version"] == 2

    # A version 1 part whose images changed: merge names the shard, by the part's own algorithm.
    part = v1 / "parts" / "part-00001-of-00002.npz.manifest.json"
    m = H.load_json(part)
    xs = next(t for t in m["tensors"] if t["name"].endswith("Xs"))
    xs["sha256"] = hashlib.sha256(b"changed").hexdigest()
    part.write_text(json.dumps(m))
    res = run(["merge", v1 / "parts", tmp_path / "never.npz"], expect_rc=66)
    H.assert_one_line_error(res, "missing: 1", "does not verify", "SHA-256")
    assert not (tmp_path / "never.npz").exists()
