import json

import pytest

from safety_heads.datasets import BUNDLED_DATASETS, dataset_path, load_prompts


@pytest.mark.parametrize(
    ("name", "rows"),
    [("advbench", 520), ("jailbreakbench", 100), ("maliciousinstruct", 100), ("harmless", 1000),
     ("harmbench", 200), ("donotanswer", 243),
     ("harmfulwriting", 60), ("lookalike", 80)],
)
def test_bundled_sets_are_complete(name, rows):
    prompts = load_prompts(name)
    assert len(prompts) == rows
    assert all(p == p.strip() and p for p in prompts)


def test_sources_ship_with_the_data():
    sources = dataset_path("advbench").parent / "SOURCES.md"
    text = sources.read_text()
    assert all(name in text for name in BUNDLED_DATASETS)


def test_limit_and_seeded_sampling():
    first = load_prompts("advbench", limit=5)
    assert first == load_prompts("advbench")[:5]
    sample = load_prompts("advbench", limit=5, shuffle=True, seed=1)
    assert sample == load_prompts("advbench", limit=5, shuffle=True, seed=1)
    assert sample != load_prompts("advbench", limit=5, shuffle=True, seed=2)
    assert set(sample) <= set(load_prompts("advbench"))


def test_user_files(tmp_path):
    (tmp_path / "a.csv").write_text("id,goal\n1,first\n2,second\n")
    assert load_prompts(tmp_path / "a.csv", column="goal") == ["first", "second"]
    (tmp_path / "b.jsonl").write_text('{"input": "one"}\n\n{"input": "two"}\n')
    assert load_prompts(tmp_path / "b.jsonl") == ["one", "two"]
    (tmp_path / "c.txt").write_text("one\n\n two \n")
    assert load_prompts(str(tmp_path / "c.txt")) == ["one", "two"]
    (tmp_path / "d.json").write_text(json.dumps(["x", {"prompt": "y"}]))
    assert load_prompts(tmp_path / "d.json", column="prompt") == ["x", "y"]
    assert load_prompts(["  p ", "", "q"]) == ["p", "q"]


def test_missing_column_names_file_and_columns(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("goal\nfirst\n")
    with pytest.raises(ValueError, match=r"a\.csv has no column 'input'.*\['goal'\]"):
        load_prompts(path)


def test_empty_file_is_refused(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("\n \n")
    with pytest.raises(ValueError, match="empty.txt"):
        load_prompts(path)


def test_bad_encoding_is_named(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match="latin.txt is not valid UTF-8"):
        load_prompts(path)


def test_unknown_source_lists_bundled_sets():
    with pytest.raises(ValueError, match="advbench"):
        load_prompts("no-such-set")
    with pytest.raises(ValueError, match="positive"):
        load_prompts("advbench", limit=0)
