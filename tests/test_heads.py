import pytest

from safety_heads.method.heads import Head, check_heads, parse_head, parse_heads


@pytest.mark.parametrize(
    "text", ["2.26", "2-26", "L2H26", "l2h26", " 2.26 ", "2:26", (2, 26), [2, 26]]
)
def test_spellings_of_one_head(text):
    assert parse_head(text) == Head(2, 26)


def test_head_prints_as_it_parses():
    assert str(Head(2, 26)) == "2.26"
    assert parse_head(str(Head(13, 0))) == Head(13, 0)
    assert parse_head(Head(1, 2).to_dict()) == Head(1, 2)


def test_several_heads_keep_their_order():
    assert parse_heads("5.1, 2.26;L0H3") == (Head(5, 1), Head(2, 26), Head(0, 3))
    assert parse_heads([(1, 2), "3.4"]) == (Head(1, 2), Head(3, 4))
    assert parse_heads((1, 2)) == (Head(1, 2),)
    assert parse_heads("") == ()
    assert parse_heads(None) == ()


@pytest.mark.parametrize("bad", ["2", "a.b", "2.26.1", "-1.2", "L2"])
def test_unreadable_heads_name_the_input(bad):
    with pytest.raises(ValueError, match="Cannot read a head"):
        parse_head(bad)


def test_negative_indices_are_refused():
    with pytest.raises(ValueError, match="non-negative"):
        Head(-1, 0)


def test_heads_are_ordered_and_hashable():
    assert sorted([Head(2, 1), Head(1, 5), Head(1, 2)]) == [Head(1, 2), Head(1, 5), Head(2, 1)]
    assert len({Head(1, 2), parse_head("1.2")}) == 1


def test_range_and_duplicates_are_checked():
    check_heads([Head(0, 0), Head(29, 8)], 30, 9)
    with pytest.raises(ValueError, match="layers 0..29"):
        check_heads([Head(30, 0)], 30, 9)
    with pytest.raises(ValueError, match="twice"):
        check_heads([Head(1, 1), Head(1, 1)], 30, 9)
