"""Two extractions of the same data on CPU give byte-identical split files.

The reference is a CLI run in its own process; here the import API extracts again in this process,
once with freshly built encoders and once with the suite's reused ones (which the other fault tests
rely on). Every kill -9 chain in test_kill_extract compares further separate processes the same way.
"""

from __future__ import annotations

from cache.verify import verify_cache
from extract.run import run
from faults.harness import assert_same_arrays, extract_config, split_arrays


def test_two_extractions_are_byte_identical(reference, tmp_path, request, reliability):
    fresh = run(extract_config(reference.data, tmp_path / "fresh"))
    assert fresh.computed == len(reference.content_ids)
    assert_same_arrays(reference.arrays, split_arrays(fresh.key_dir), "fresh encoders vs CLI")
    request.getfixturevalue("fast_encoders")
    reused = run(extract_config(reference.data, tmp_path / "reused"))
    assert_same_arrays(reference.arrays, split_arrays(reused.key_dir), "reused encoders vs CLI")
    assert verify_cache(reused.key_dir) == []
    datasets = sum(len(a) for a in reference.arrays.values())
    reliability.record(
        "determinism",
        "the same data extracted again on CPU (CLI process vs import API, fresh and reused encoders)",
        2,
        [f"all {datasets} datasets of train/val/test.h5 byte-identical (values, dtypes, shapes)"],
    )
