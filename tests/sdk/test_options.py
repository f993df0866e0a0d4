"""The text options' parsers (edgekit.options): input shapes with dims kept dynamic, the API's input_shapes and the
check of the names and ranks against the model's inputs."""

import pytest

from edgekit.errors import InputError
from edgekit.options import check_input_shapes, input_shapes, parse_input_shapes
from edgekit.types import TensorSpec


def test_dims_kept_dynamic_are_none():
    got = parse_input_shapes(["tokens=None,7", "image=-1,3,?,224", "x=2"], "--input-shape")
    assert got == {"tokens": (None, 7), "image": (None, 3, None, 224), "x": (2,)}
    assert input_shapes({"tokens": (-1, 7), "ids": [None, "5"], "s": "none,3"}) == {
        "tokens": (None, 7), "ids": (None, 5), "s": (None, 3)}


@pytest.mark.parametrize("bad", ["image", "=1,2", "image=1,x", "image=1,0", "image=-2,3", "image=1.5", "image="])
def test_unreadable_shapes_are_refused(bad):
    with pytest.raises(InputError, match="cannot read --input-shape") as e:
        parse_input_shapes([bad], "--input-shape")
    assert "None or -1 keeps a dim dynamic" in e.value.hint


def test_a_name_given_twice_is_refused():
    with pytest.raises(InputError, match="tokens is given twice"):
        parse_input_shapes(["tokens=1,7", "tokens=1,8"])


@pytest.mark.parametrize("bad", [(1, 0), (1, 2.5), (True, 3), ("x",)])
def test_api_shapes_are_checked(bad):
    with pytest.raises(InputError, match="cannot read the input shape"):
        input_shapes({"tokens": bad})


def test_names_and_ranks_are_checked_against_the_model():
    specs = [TensorSpec("tokens", (None, None), "int64"), TensorSpec("mask", (None, None), "int64")]
    check_input_shapes({"tokens": (None, 7)}, specs)  # fine: nothing raised
    with pytest.raises(InputError, match="names no input of the model: token$") as e:
        check_input_shapes({"token": (1, 7)}, specs)
    assert e.value.hint == "the model's inputs are: tokens, mask"
    with pytest.raises(InputError, match="gives mask 1 dims; the model's has 2") as e:
        check_input_shapes({"mask": (7,)}, specs)
    assert "mask=None,None" in e.value.hint
