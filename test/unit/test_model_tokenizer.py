"""WordTokenizer: deterministic vocabulary, padding, truncation, round trip."""

from __future__ import annotations

import json

import pytest

from uam_ros.model.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID, WordTokenizer

TEXTS = ["Pick up the red cube.", "Put the blue block in the bowl!", "What color is the cube?"]


def test_vocabulary_is_independent_of_text_order():
    assert WordTokenizer.build(TEXTS).itos == WordTokenizer.build(TEXTS[::-1]).itos
    assert WordTokenizer.build(TEXTS).itos[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"]


def test_encode_pads_to_max_len_with_bos_eos():
    tok = WordTokenizer.build(TEXTS)
    ids = tok.encode("Pick up the red cube.", 10)
    assert len(ids) == 10
    assert ids[0] == BOS_ID and ids[6] == tok.stoi["."] and ids[7] == EOS_ID
    assert ids[8:] == [PAD_ID, PAD_ID]


@pytest.mark.parametrize("text", TEXTS)
def test_round_trip(text):
    tok = WordTokenizer.build(TEXTS)
    decoded = tok.decode(tok.encode(text, 24))
    assert decoded == tok.normalize(text)
    assert decoded == text.lower()


def test_unknown_words_and_truncation_keep_eos():
    tok = WordTokenizer.build(TEXTS)
    ids = tok.encode("pick up the GIRAFFE and the red cube", 6)
    assert ids == [BOS_ID, tok.stoi["pick"], tok.stoi["up"], tok.stoi["the"], UNK_ID, EOS_ID]
    assert tok.decode(ids) == "pick up the <unk>"
    assert tok.encode("pick", 4, add_eos=False, pad=False) == [BOS_ID, tok.stoi["pick"]]
    with pytest.raises(ValueError, match="max_len=1"):
        tok.encode("pick", 1)


def test_serialised_form_is_json_and_restores_the_same_ids():
    tok = WordTokenizer.build(TEXTS)
    again = WordTokenizer.from_dict(json.loads(json.dumps(tok.to_dict())))
    assert again.itos == tok.itos
    assert again.encode(TEXTS[1], 16) == tok.encode(TEXTS[1], 16)
    with pytest.raises(ValueError, match="expected type 'word'"):
        WordTokenizer.from_dict({"type": "bpe", "vocab": []})
