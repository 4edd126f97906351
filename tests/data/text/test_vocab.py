from rnnlab.data.text.vocab import UNKNOWN, Vocab


def test_most_frequent_first_with_unknown_at_zero():
    vocab = Vocab.build("abbccc")
    assert vocab.tokens == [UNKNOWN, "c", "b", "a"]
    assert vocab.encode("cab") == [1, 3, 2]


def test_ties_keep_order_of_first_appearance():
    assert Vocab.build("ba").tokens == [UNKNOWN, "b", "a"]


def test_maps_both_ways_and_unknown_tokens_to_zero():
    vocab = Vocab.build("hello world")
    assert vocab.decode(vocab.encode("hello")) == "hello"
    assert vocab.encode("z") == [0]


def test_word_vocab_joins_with_spaces_and_survives_a_plain_dict_round_trip():
    vocab = Vocab.build(["the", "time", "the", "machine"], joiner=" ")
    assert vocab.decode(vocab.encode(vocab.split("the machine"))) == "the machine"
    again = Vocab.from_dict(vocab.to_dict())
    assert again == vocab and again.index == vocab.index


def test_rare_and_surplus_words_are_left_to_unknown():
    words = ["the", "the", "the", "the", "time", "time", "time", "machine", "machine", "traveller"]
    assert Vocab.build(words, " ", min_freq=2).tokens == [UNKNOWN, "the", "time", "machine"]
    capped = Vocab.build(words, " ", max_size=3)
    assert capped.tokens == [UNKNOWN, "the", "time"]
    assert capped.encode(["machine", "the"]) == [0, 1]
