"""LoRA adapters on MusicGen's decoder: both namings read, peft's merge equals W + scale * B @ A."""

import json

import pytest
import torch
from safetensors.torch import save_file

from thesis_reference import write_audiocraft_adapter
from video_bgm.errors import ModelError
from video_bgm.lora import ADAPTER_CONFIG, LoraAdapter, read_adapter
from video_bgm.musicgen import MusicGen
from video_bgm.random_models import musicgen_config, random_musicgen


@pytest.fixture()
def musicgen():
    return MusicGen(random_musicgen(musicgen_config("tiny")), name="tiny")


def _merged_by_hand(musicgen, adapter):
    modules = dict(musicgen.model.decoder.named_modules())
    return {name: modules[name].weight.detach() + adapter.scale * b @ a for name, (a, b) in adapter.weights.items()}


def test_an_audiocraft_adapter_merges_into_the_decoder_as_w_plus_scaled_b_a(tmp_path, musicgen):
    reference = write_audiocraft_adapter(tmp_path / "peft", musicgen.model.decoder, r=4, alpha=8.0)
    adapter = read_adapter(tmp_path / "peft")
    assert set(adapter.weights) == set(reference) and adapter.scale == 2.0
    expected = _merged_by_hand(musicgen, adapter)
    names_before = sorted(musicgen.model.decoder.state_dict())
    adapter.apply(musicgen)
    decoder = musicgen.model.decoder
    modules = dict(decoder.named_modules())
    for name, weight in expected.items():
        assert type(modules[name]) is torch.nn.Linear  # peft's layers are gone again
        torch.testing.assert_close(modules[name].weight, weight, rtol=0, atol=1e-6)
    assert sorted(decoder.state_dict()) == names_before
    assert not any(p.requires_grad for p in decoder.parameters()) and not hasattr(decoder, "peft_config")


def test_our_naming_round_trips_through_save_and_read(tmp_path, musicgen):
    written = write_audiocraft_adapter(tmp_path / "peft", musicgen.model.decoder, r=2, alpha=4.0)
    adapter = read_adapter(tmp_path / "peft")
    adapter.save(tmp_path / "ours", base_model="tiny")
    again = read_adapter(tmp_path / "ours")
    assert (again.r, again.alpha) == (2, 4.0) and set(again.weights) == set(written)
    for name, (a, b) in adapter.weights.items():
        assert torch.equal(again.weights[name][0], a) and torch.equal(again.weights[name][1], b)


def test_rslora_scales_by_the_root_of_the_rank():
    assert LoraAdapter({}, r=16, alpha=8.0, use_rslora=True).scale == 2.0
    assert LoraAdapter({}, r=16, alpha=8.0).scale == 0.5


def test_an_adapter_for_another_musicgen_size_is_one_line(tmp_path, musicgen):
    big = MusicGen(random_musicgen(musicgen_config("tiny")), name="tiny")
    write_audiocraft_adapter(tmp_path / "peft", big.model.decoder, r=2)
    adapter = read_adapter(tmp_path / "peft")
    name = sorted(adapter.weights)[0]
    a, b = adapter.weights[name]
    adapter.weights[name] = (torch.zeros(a.shape[0], a.shape[1] + 1), b)
    with pytest.raises(ModelError, match=r"is \d+x\d+ but tiny's is \d+x\d+ \(an adapter for another MusicGen size\?\)"):
        adapter.apply(musicgen)
    adapter.weights = {"model.decoder.layers.99.fc1": (a, b)}
    with pytest.raises(ModelError, match="adapts model.decoder.layers.99.fc1, which tiny's decoder does not have"):
        adapter.apply(musicgen)


def test_unsupported_adapters_are_refused_naming_the_key(tmp_path):
    folder = tmp_path / "a"
    folder.mkdir()
    save_file({"base_model.model.model.decoder.layers.0.fc1.lora_A.weight": torch.zeros(2, 4),
               "base_model.model.model.decoder.layers.0.fc1.lora_B.weight": torch.zeros(4, 2)},
              folder / "adapter_model.safetensors")
    for config, message in [({"peft_type": "IA3", "r": 2, "lora_alpha": 2}, "peft_type 'IA3' is not supported"),
                            ({"r": 2, "lora_alpha": 2, "use_dora": True}, "use_dora=True is not supported"),
                            ({"lora_alpha": 2}, "needs r and lora_alpha"),
                            ({"r": 3, "lora_alpha": 2}, "not rank r=3")]:
        (folder / ADAPTER_CONFIG).write_text(json.dumps(config))
        with pytest.raises(ModelError, match=message):
            read_adapter(folder)
    (folder / ADAPTER_CONFIG).write_text("{oops")
    with pytest.raises(ModelError, match=f"{ADAPTER_CONFIG} is not valid JSON"):
        read_adapter(folder)
    with pytest.raises(ModelError, match="not a PEFT adapter folder"):
        read_adapter(tmp_path)
