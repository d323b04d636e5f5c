"""The offline tokenizer and the prompt layout (checked against transformers' own PaliGemmaProcessor)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import PaliGemmaProcessor, SiglipImageProcessor

from bridgevla.model.tokenizer import BOS, IMAGE, PAD, build_offline_tokenizer, encode_prompts, image_token_id


@pytest.fixture(scope="module")
def tok():
    return build_offline_tokenizer()


def test_build_is_deterministic(tok):
    again = build_offline_tokenizer()
    assert again.backend_tokenizer.to_str() == tok.backend_tokenizer.to_str()


def test_special_ids_follow_paligemma(tok):
    assert (tok.pad_token_id, tok.eos_token_id, tok.bos_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    assert image_token_id(tok) == 4
    assert tok.convert_ids_to_tokens([0, 2, 4]) == [PAD, BOS, IMAGE]


def test_instruction_words_are_single_tokens(tok):
    ids = tok("put the red block on the green target", add_special_tokens=False)["input_ids"]
    assert len(ids) == 8


_TOK = build_offline_tokenizer()  # hypothesis tests cannot take function-scoped fixtures


@settings(max_examples=40, deadline=None)
@given(st.text(max_size=40))
def test_any_text_round_trips(text):
    """Byte-level: every string tokenizes without <unk> and decodes back exactly."""
    ids = _TOK(text, add_special_tokens=False)["input_ids"]
    assert _TOK.unk_token_id not in ids
    assert _TOK.decode(ids) == text


def test_prompts_match_the_paligemma_processor(tok):
    """Our layout equals what the real processor builds from "<image>"*3 + instruction (independent reference)."""
    proc_img = SiglipImageProcessor(size={"height": 16, "width": 16}, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    proc_img.image_seq_length = 4
    proc = PaliGemmaProcessor(image_processor=proc_img, tokenizer=build_offline_tokenizer())
    texts = ["open the drawer", "put the red block on the green target", "Zebra ünïcode 42!"]
    img = np.zeros((16, 16, 3), np.uint8)
    ref = proc(images=[[img] * 3] * 3, text=[IMAGE * 3 + t for t in texts], return_tensors="pt", padding="longest")
    ids, attn = encode_prompts(tok, texts, num_images=3, tokens_per_image=4, max_text_tokens=64)
    assert torch.equal(ids, ref["input_ids"])
    assert torch.equal(attn, ref["attention_mask"])


def test_long_instructions_are_cut_keeping_the_newline(tok):
    with pytest.warns(UserWarning, match=r"only the first 6 are read"):
        ids, attn = encode_prompts(tok, ["pick " * 50], num_images=1, tokens_per_image=2, max_text_tokens=6)
    assert ids.shape == (1, 2 + 1 + 6)
    assert ids[0, -1].item() == tok("\n", add_special_tokens=False)["input_ids"][-1]
    assert attn.all()


def test_instructions_that_fit_are_not_warned_about(tok, recwarn):
    n = len(tok("pick up the red block\n", add_special_tokens=False)["input_ids"])
    encode_prompts(tok, ["pick up the red block"], num_images=1, tokens_per_image=2, max_text_tokens=n)
    assert not [w for w in recwarn if "are read" in str(w.message)]


def test_bad_arguments(tok):
    with pytest.raises(ValueError, match="instructions"):
        encode_prompts(tok, "not a list", 3, 4, 8)
    with pytest.raises(ValueError, match="num_images"):
        encode_prompts(tok, ["a"], 0, 4, 8)
    with pytest.raises(ValueError, match="vocab_size"):
        build_offline_tokenizer(vocab_size=10)


@pytest.mark.parametrize("markup", [IMAGE, "<eos>", "<pad>", "<bos>", "<unk>", "<image><image>", "<bos>\n<eos>"])
def test_control_tokens_typed_in_an_instruction_are_plain_text(tok, markup):
    ids, attn = encode_prompts(tok, [f"pick {markup} the red block"], num_images=3, tokens_per_image=4,
                               max_text_tokens=64)
    n_img = 3 * 4
    assert (ids[0] == image_token_id(tok)).sum().item() == n_img  # exactly the image slots, no injected one
    text = ids[0, n_img + 1:][attn[0, n_img + 1:].bool()].tolist()
    assert not set(text) & set(tok.all_special_ids)
    assert tok.decode(text) == f"pick {markup} the red block\n"  # the characters survive as written


@pytest.mark.parametrize(("instructions", "match"), [
    ([""], r"instructions\[0\] is empty"), (["ok", "   \n"], r"instructions\[1\] is empty"),
    (["bad \udcff byte"], r"instructions\[0\] is not valid UTF-8"), ([b"bytes"], r"instructions\[0\] is bytes"),
    ([3], r"instructions\[0\] must be a string"), ([], "must not be empty"),
])
def test_bad_instructions_are_named(tok, instructions, match):
    with pytest.raises(ValueError, match=match):
        encode_prompts(tok, instructions, 3, 4, 8)


_SPECIAL_TEXT = st.sampled_from([IMAGE, "<eos>", "<pad>", "<bos>", "<unk>", "<", ">", "image", "\udcff"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=6), _SPECIAL_TEXT), min_size=1, max_size=6).map("".join)
       .filter(lambda s: s.strip()))
def test_no_text_ever_becomes_a_control_token(text):
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        with pytest.raises(ValueError, match="UTF-8"):
            encode_prompts(_TOK, [text], 1, 2, 256)
        return
    ids, attn = encode_prompts(_TOK, [text], 1, 2, 256)
    assert (ids[0] == image_token_id(_TOK)).sum().item() == 2 and ids[0, 2].item() == _TOK.bos_token_id
    body = ids[0, 3:][attn[0, 3:].bool()].tolist()
    assert not set(body) & set(_TOK.all_special_ids)
