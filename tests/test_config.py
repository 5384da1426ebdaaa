import dataclasses

import pytest

import tf_transformer as tft


def test_paper_rows_of_table_3():
    base = tft.TransformerConfig.preset("base", vocab_size=37000)
    big = tft.TransformerConfig.preset("big", vocab_size=37000)
    assert (base.num_encoder_layers, base.d_model, base.d_ff, base.num_heads, base.dropout) == \
        (6, 512, 2048, 8, 0.1)
    assert (big.num_encoder_layers, big.d_model, big.d_ff, big.num_heads, big.dropout) == \
        (6, 1024, 4096, 16, 0.3)
    assert base.head_size == 64 and big.head_size == 64


@pytest.mark.parametrize("preset, paper_millions", [("base", 65), ("big", 213)])
def test_parameter_counts_match_the_paper(preset, paper_millions):
    # Shared 37,000-token vocabulary and tied embeddings, as in the paper's EN-DE setup.
    config = tft.TransformerConfig.preset(preset, vocab_size=37000)
    count = tft.Transformer(config).count_params()
    print(f"{preset}: {count:,} parameters (paper: {paper_millions}M)")
    assert abs(count / (paper_millions * 1e6) - 1) < 0.05


def test_json_round_trip_and_replace():
    config = tft.TransformerConfig.preset("tiny", vocab_size=100, norm_first=True)
    assert tft.TransformerConfig.from_json(config.to_json()) == config
    assert config.replace(d_model=128).d_model == 128
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.d_model = 3  # frozen


@pytest.mark.parametrize("overrides, message", [
    (dict(d_model=100, num_heads=8), "d_model=100, num_heads=8"),
    (dict(num_heads=0), "num_heads=0"),
    (dict(d_ff=-5), "d_ff=-5"),
    (dict(dropout=1.0), "dropout=1.0"),
    (dict(position_encoding="rope"), "position_encoding='rope'"),
    (dict(source_vocab_size=10, target_vocab_size=12), "source_vocab_size=10"),
])
def test_invalid_values_name_the_value(overrides, message):
    values = dict(source_vocab_size=100, target_vocab_size=100) | overrides
    with pytest.raises(ValueError, match=message):
        tft.TransformerConfig(**values)


def test_unknown_preset_and_fields():
    with pytest.raises(ValueError, match="'huge'"):
        tft.TransformerConfig.preset("huge", vocab_size=10)
    with pytest.raises(ValueError, match="colour"):
        tft.TransformerConfig.from_dict({"source_vocab_size": 1, "target_vocab_size": 1,
                                         "colour": "red"})


def test_special_ids_are_config_fields_and_old_config_json_loads_with_defaults():
    from tf_transformer.text import SubwordTokenizer

    config = tft.TransformerConfig.preset("tiny", vocab_size=100)
    assert config.special_ids == {"pad_id": 0, "unk_id": 1, "start_id": 2, "end_id": 3}
    assert (SubwordTokenizer.pad_id, SubwordTokenizer.unk_id, SubwordTokenizer.start_id,
            SubwordTokenizer.end_id) == (0, 1, 2, 3)
    old = config.to_dict()
    for name in ("pad_id", "unk_id", "start_id", "end_id"):
        del old[name]  # a config.json written before the fields existed
    assert tft.TransformerConfig.from_dict(old) == config
    moved = config.replace(start_id=5, end_id=6)
    assert tft.TransformerConfig.from_json(moved.to_json()).end_id == 6


@pytest.mark.parametrize("overrides, message", [
    (dict(end_id=2), "must differ"),
    (dict(end_id=100), "inside both vocabularies"),
    (dict(pad_id=-1), "inside both vocabularies"),
])
def test_bad_special_ids_are_rejected(overrides, message):
    with pytest.raises(ValueError, match=message):
        tft.TransformerConfig.preset("tiny", vocab_size=100, **overrides)
