from miniworld.tokenizer import MAX_LENGTH, train_clip_tokenizer
from miniworld.world import all_scenes, english_caption


def test_caption_words_are_single_tokens_and_unknown_words_still_tokenize(tmp_path):
    tokenizer = train_clip_tokenizer(english_caption(s) for s in all_scenes())
    tokens = tokenizer.tokenize("a large red circle on the left on a white background")
    assert tokens == [w + "</w>" for w in "a large red circle on the left on a white background".split()]
    assert "".join(tokenizer.tokenize("zebra")).replace("</w>", "") == "zebra"
    ids = tokenizer("a red star", padding="max_length", max_length=MAX_LENGTH).input_ids
    assert len(ids) == MAX_LENGTH and ids[0] == tokenizer.bos_token_id and ids[4] == tokenizer.eos_token_id
    tokenizer.save_pretrained(tmp_path)
    reloaded = type(tokenizer).from_pretrained(tmp_path)
    assert reloaded("a small blue diamond").input_ids == tokenizer("a small blue diamond").input_ids
