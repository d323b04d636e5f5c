"""The streaming JSON reader against json.loads, at chunk sizes that cut every token somewhere."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pretrain.jsonstream import JsonStreamError, iter_array, iter_object, iter_records

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12))
values = st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4),
                      max_leaves=12)


@settings(max_examples=40, deadline=None)
@given(items=st.lists(values, max_size=8), chunk=st.integers(1, 9), indent=st.sampled_from([None, 1]))
def test_array_elements_equal_json_loads_at_any_chunk_size(tmp_path_factory, items, chunk, indent):
    path = tmp_path_factory.mktemp("j") / "a.json"
    path.write_text(json.dumps(items, indent=indent))
    assert list(iter_array(path, chunk=chunk)) == json.loads(path.read_text())


@settings(max_examples=40, deadline=None)
@given(doc=st.dictionaries(st.sampled_from(["images", "annotations", "info", "x"]), values, max_size=4),
       chunk=st.integers(1, 9))
def test_object_streams_the_named_arrays_and_returns_other_values_whole(tmp_path_factory, doc, chunk):
    path = tmp_path_factory.mktemp("j") / "o.json"
    path.write_text(json.dumps(doc))
    expected = []
    for key, value in doc.items():
        if key in ("images", "annotations") and isinstance(value, list):
            expected += [(key, v) for v in value]
        else:
            expected.append((key, value))
    assert list(iter_object(path, {"images", "annotations"}, chunk=chunk)) == expected


def test_numbers_cut_at_a_chunk_edge_are_read_whole(tmp_path):
    path = tmp_path / "n.json"
    path.write_text("[123456789, 0.000123, 1e-7, true, 42]")
    for chunk in range(1, 12):
        assert list(iter_array(path, chunk=chunk)) == [123456789, 0.000123, 1e-7, True, 42]


def test_jsonl_records_and_bad_files_name_the_file_and_place(tmp_path):
    good = tmp_path / "r.jsonl"
    good.write_text('{"a": 1}\n\n[2]\n')
    assert list(iter_records(good)) == [{"a": 1}, [2]]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(JsonStreamError, match=r"bad.jsonl: line 2"):
        list(iter_records(bad))
    truncated = tmp_path / "t.json"
    truncated.write_text('[{"a": 1}, {"b": [1, 2')
    with pytest.raises(JsonStreamError, match=r"t.json: invalid JSON at character 22"):
        list(iter_array(truncated, chunk=4))
    not_array = tmp_path / "o.json"
    not_array.write_text('{"a": 1}')
    with pytest.raises(JsonStreamError, match="top-level JSON array"):
        list(iter_array(not_array))
    trailing = tmp_path / "x.json"
    trailing.write_text("[1] 2")
    with pytest.raises(JsonStreamError, match="after the top-level array"):
        list(iter_array(trailing))
    with pytest.raises(FileNotFoundError, match="missing.json"):
        list(iter_array(tmp_path / "missing.json"))
