"""Property tests of the run-length codecs (hypothesis): every mask survives a round trip in both
formats, and *any* text either decodes to a mask or is a ``ValueError`` / ``TypeError``, never an
``OverflowError``, ``IndexError`` or a silently accepted non-ASCII digit."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from monai_gamble.data import rle_decode, rle_encode

FORMATS = ("kaggle", "siim")
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

masks = st.tuples(st.integers(1, 12), st.integers(1, 12)).flatmap(lambda hw: arrays(np.bool_, hw))
# numbers of every size, in RLE-like strings: the fuzzing that found the OverflowError / IndexError
numbers = st.one_of(
    st.integers(0, 200),
    st.integers(0, 10**40),
    st.integers(-(10**30), 10**30),
    st.sampled_from(["-1", "+3", "00", "0" * 30 + "7", "1e3", "nan", "\u0663", "\uff11\uff12", "\u00b2"]),
).map(str)
rle_like = st.lists(numbers, max_size=10).flatmap(
    lambda values: st.sampled_from([" ", "  ", "\t", "\n"]).map(lambda sep: sep.join(values))
)
any_text = st.one_of(rle_like, st.text(max_size=40), st.text(alphabet="0123456789 -+", max_size=40))
shapes = st.tuples(st.integers(1, 16), st.integers(1, 16))


@PROPERTY
@given(mask=masks, fmt=st.sampled_from(FORMATS))
def test_round_trip(mask, fmt):
    decoded = rle_decode(rle_encode(mask, fmt), mask.shape, fmt)
    assert decoded.dtype == bool and decoded.shape == mask.shape
    np.testing.assert_array_equal(decoded, mask)


@PROPERTY
@given(text=any_text, shape=shapes, fmt=st.sampled_from(FORMATS))
def test_any_text_decodes_or_is_a_clear_error(text, shape, fmt):
    try:
        mask = rle_decode(text, shape, fmt)
    except ValueError as e:
        assert str(e), "an empty error message"
        return
    assert mask.dtype == bool and mask.shape == shape
    assert text.isascii(), f"non-ASCII text {text!r} was decoded"
    # what decodes is a canonical RLE of that mask, up to white space and redundant signs / zeros
    assert rle_decode(rle_encode(mask, fmt), shape, fmt).tolist() == mask.tolist()


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "rle, match",
    [
        ("1 " + "9" * 40, "larger than the 16 pixels"),  # OverflowError in int64 before
        ("9" * 19 + " 1", "larger than the 16 pixels"),  # fits int64, overflowed the sums before
        ("1 9223372036854775807", "larger than the 16 pixels"),
        ("1 2 " * 9, "more than the 16 pixels|starts before the end|past the end"),
        ("\u0663 1", "non-ASCII character '\u0663' \\(U\\+0663\\)"),  # an Arabic-Indic 3, read as 3 before
        ("1\u00a02", "non-ASCII character"),  # a no-break space
    ],
)
def test_huge_and_non_ascii_values_are_clear_errors(rle, match, fmt):
    with pytest.raises(ValueError, match=match):
        rle_decode(rle, (4, 4), fmt)


@pytest.mark.parametrize("shape", [(4, float("inf")), (4, float("nan")), (4, 2.5), (0, 4), ("4", 4), (2**31, 2**31)])
def test_bad_shapes_are_value_errors(shape):
    with pytest.raises(ValueError, match="shape"):
        rle_decode("1 1", shape)
