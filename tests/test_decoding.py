"""Fast decoding: per-step logits against transformers' own forward, the few-row kernel, bf16, CUDA."""

import sys

import pytest
import torch

from video_bgm import mapped_pages
from video_bgm.decoding import FewRowLinear, Stepper
from video_bgm.musicgen import MusicGen
from video_bgm.random_models import musicgen_config, random_musicgen


def _config(size, stereo=False):
    config = musicgen_config("tiny", stereo=stereo)
    if size == "wide":  # musicgen-small's vocabulary; widths of many SIMD vectors
        config.decoder.hidden_size, config.decoder.ffn_dim, config.decoder.vocab_size = 256, 1024, 2048
        config.decoder.pad_token_id = config.decoder.bos_token_id = config.decoder.decoder_start_token_id = 2048
    return config


def _inputs(mg, rows_per_branch=2, steps=24, seed=0):
    """Guided cross-attention inputs for 2 * rows_per_branch rows and random token ids [R*K, steps]."""
    g = torch.Generator().manual_seed(seed)
    cond = torch.randn(rows_per_branch, 5, mg.text_dim, generator=g)
    mask = torch.ones(rows_per_branch, 5, dtype=torch.bool)
    mask[-1, 3:] = False
    condition, cross_mask = mg._cross_attention_inputs(mg.project_text(cond), mask, guidance_scale=3.0)
    rows = condition.shape[0] * mg.num_codebooks
    tokens = torch.randint(0, mg.model.config.decoder.vocab_size, (rows, steps), generator=g)
    tokens[:, 0] = mg._pad_id  # the start token
    return condition, cross_mask, tokens


def _reference_logits(model, condition, mask, tokens):
    """transformers' decoder over the whole sequence at once: logits at every position [R*K, L, V]."""
    with torch.no_grad():
        return model.decoder(input_ids=tokens, encoder_hidden_states=condition,
                             encoder_attention_mask=mask).logits.float()


def _stepped_logits(stepper, tokens, prefix=4):
    """Our path: a multi-token first step (as with an audio prompt), then one token per step."""
    with torch.no_grad():
        out = [stepper(tokens[:, :prefix])]
        out += [stepper(tokens[:, t - 1:t]) for t in range(prefix + 1, tokens.shape[1] + 1)]
    return torch.stack(out, dim=1).float()  # (R*K, L - prefix + 1, V)


@pytest.mark.parametrize("static", [False, True], ids=["preallocated", "static-cache"])
@pytest.mark.parametrize("size", ["tiny", "wide"])
def test_per_step_logits_match_transformers_forward(size, static):
    """Every step's logits of our fast path equal transformers' forward of the untouched model."""
    ours = MusicGen(random_musicgen(_config(size), seed=3))
    reference = random_musicgen(_config(size), seed=3)  # same weights, left as transformers builds them
    condition, mask, tokens = _inputs(ours)
    stepper = ours._stepper(condition, mask, capacity=tokens.shape[1])
    if static:
        stepper = Stepper(ours.model.decoder, condition, mask, tokens.shape[1], static=True)
    assert any(isinstance(m, FewRowLinear) for m in ours.model.decoder.modules())
    expected = _reference_logits(reference, condition, mask, tokens)[:, 3:]
    # float32 rounding: another summation order over D-wide dot products, nothing more
    torch.testing.assert_close(_stepped_logits(stepper, tokens), expected, rtol=1e-4,
                               atol=2e-5 * expected.abs().max().item())


@pytest.mark.parametrize("stereo", [False, True], ids=["mono", "stereo"])
def test_fast_and_plain_generation_give_the_same_codes(stereo):
    fast = MusicGen(random_musicgen(_config("tiny", stereo), seed=5))
    plain = MusicGen(random_musicgen(_config("tiny", stereo), seed=5), fast=False)
    cond = torch.randn(2, 5, fast.text_dim, generator=torch.Generator().manual_seed(0))
    mask = torch.ones(2, 5, dtype=torch.bool)
    prompt = torch.randint(0, 64, (2, fast.num_codebooks, 7), generator=torch.Generator().manual_seed(1))

    def codes(mg):
        return mg.generate_codes(mg.project_text(cond), mask, 40, guidance_scale=3.0, top_k=1, prompt=prompt)

    assert torch.equal(codes(fast), codes(plain))
    assert not any(isinstance(m, FewRowLinear) for m in plain.model.modules()), "fast=False leaves the model as given"


def test_the_kernel_keeps_the_weights_and_the_training_loss_with_its_gradients():
    """The swap copies no weight (same tensors, same state dict); the loss and its gradient w.r.t.
    the conditioning, which run through F.linear, stay those of the untouched model."""
    fast = MusicGen(random_musicgen(_config("wide"), seed=2))
    plain = MusicGen(random_musicgen(_config("wide"), seed=2), fast=False)
    condition, mask, _ = _inputs(fast)
    before = {name: p.data_ptr() for name, p in fast.model.decoder.state_dict().items()}
    fast._stepper(condition, mask, capacity=8)  # swaps, as the first generation does
    assert {name: p.data_ptr() for name, p in fast.model.decoder.state_dict().items()} == before

    codes = torch.randint(0, 2048, (4, fast.num_codebooks, 12), generator=torch.Generator().manual_seed(4))

    def loss_and_grad(mg):
        cond = condition.clone().requires_grad_(True)
        loss = mg.loss(cond, mask.bool(), codes)
        loss.backward()
        return loss.detach(), cond.grad

    (loss_a, grad_a), (loss_b, grad_b) = loss_and_grad(fast), loss_and_grad(plain)
    torch.testing.assert_close(loss_a, loss_b, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad_a, grad_b, rtol=1e-4, atol=1e-6)
    with torch.no_grad():
        torch.testing.assert_close(fast.loss(condition, mask.bool(), codes), loss_b, rtol=1e-5, atol=1e-5)


def _mapped_kib(path) -> int:
    """Resident KiB of this process's memory mappings of ``path`` (/proc/self/smaps)."""
    total, inside = 0, False
    for line in open("/proc/self/smaps"):
        fields = line.split()
        if "-" in fields[0] and len(fields) >= 5:  # a mapping's header line
            inside = len(fields) >= 6 and fields[5] == str(path)
        elif inside and fields[0] == "Rss:":
            total += int(fields[1])
    return total


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pagemap")
def test_handing_back_a_mapped_decoder_keeps_pages_someone_changed(tmp_path):
    """Unmodified pages of the mapped checkpoint leave the process and read back the same bytes;
    a weight changed in memory exists nowhere else, so its pages stay."""
    random_musicgen(_config("wide"), seed=3).save_pretrained(tmp_path)
    mg = MusicGen.from_pretrained(str(tmp_path))
    checkpoint = tmp_path / "model.safetensors"
    linears = [m for m in mg.model.decoder.modules() if type(m) is torch.nn.Linear]
    changed = linears[0].weight  # changed in memory and still held: its pages must stay
    changed.mul_(2)
    expected_changed, expected_last = changed.clone(), linears[-1].weight.clone()
    for linear in linears:
        linear.weight.sum()  # every weight read: its pages are resident
    before = _mapped_kib(checkpoint)
    assert mapped_pages.release_module(mg.model.decoder) > 0
    released = sum(m.weight.numel() * 4 for m in linears[1:]) // 1024
    assert before - _mapped_kib(checkpoint) >= 0.95 * released
    assert torch.equal(changed, expected_changed)
    assert torch.equal(linears[-1].weight, expected_last)  # read back from the file


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pagemap")
def test_a_frame_encoder_hands_back_its_mapped_pages_and_still_encodes_the_same(tmp_path):
    """What generation does after each window's frames are encoded (windows.video_condition)."""
    from video_bgm.frames import CLIPFrameEncoder
    from video_bgm.random_models import clip_image_processor, clip_vision_config, random_clip

    config = clip_vision_config("tiny")
    config.hidden_size, config.intermediate_size = 256, 1024  # weights of many whole pages
    folder = tmp_path / "clip"
    random_clip(config).save_pretrained(folder)
    clip_image_processor(config.image_size).save_pretrained(folder)
    encoder = CLIPFrameEncoder(str(folder))
    frames = torch.randint(0, 256, (3, 40, 48, 3), dtype=torch.uint8)
    first = encoder.encode(frames)
    checkpoint = folder / "model.safetensors"
    before = _mapped_kib(checkpoint)
    assert mapped_pages.release_module(encoder) > 0
    assert _mapped_kib(checkpoint) <= 0.1 * before
    torch.testing.assert_close(encoder.encode(frames), first, rtol=0, atol=0)


def test_bf16_per_step_logits_stay_close_to_fp32():
    """bf16 weights and activations: per-step logits close to float32's, on the same inputs."""
    fp32 = MusicGen(random_musicgen(_config("wide"), seed=3), fast=False)
    bf16_model = random_musicgen(_config("wide"), seed=3)
    bf16_model.decoder.to(torch.bfloat16)
    bf16 = MusicGen(bf16_model)
    assert bf16.dtype == torch.bfloat16
    condition, mask, tokens = _inputs(fp32)
    expected = _reference_logits(fp32.model, condition, mask, tokens)[:, 3:]
    got = _stepped_logits(bf16._stepper(*bf16._cross_attention_inputs(*_unguided(condition, mask), 3.0),
                                        capacity=tokens.shape[1]), tokens)
    # bf16 keeps ~3 significant digits: on this model the logits move by ~2.5 % of their spread,
    # the most likely code agrees ~97 % of the time, the distributions differ by ~0.04 in total variation
    error = (got - expected).abs().mean() / expected.std()
    agreement = (got.argmax(-1) == expected.argmax(-1)).float().mean()
    variation = 0.5 * (got.softmax(-1) - expected.softmax(-1)).abs().sum(-1).mean()
    assert error < 0.05 and agreement > 0.9 and variation < 0.08, (error, agreement, variation)
    assert not torch.equal(got, expected), "bf16 must actually run in bf16"


def _unguided(condition, mask):
    """The conditional half of guided inputs, to rebuild them in another MusicGen's dtype."""
    half = condition.shape[0] // 2
    return condition[:half], mask[:half].bool()


def test_bf16_generation_through_the_public_api():
    model = random_musicgen(_config("tiny"), seed=6)
    model.decoder.to(torch.bfloat16)
    mg = MusicGen(model)
    cond = torch.randn(1, 5, mg.text_dim)
    codes = mg.generate_codes(mg.project_text(cond), torch.ones(1, 5, dtype=torch.bool), 20,
                              generator=torch.Generator().manual_seed(0))
    assert codes.shape == (1, mg.num_codebooks, 20)
    assert mg.decode(codes).dtype == torch.float32  # EnCodec stays float32


def test_static_cache_is_kept_across_generations():
    """The GPU path's static cache (here without compilation, on the CPU) is reused by the next
    generation with the same conditioning shape and still gives the plain path's codes."""
    static = MusicGen(random_musicgen(_config("tiny"), seed=8))
    static.static_cache, static.compile_step = True, False
    plain = MusicGen(random_musicgen(_config("tiny"), seed=8), fast=False)
    mask = torch.ones(1, 5, dtype=torch.bool)
    for seed, frames in [(0, 30), (1, 12), (2, 30)]:
        cond = torch.randn(1, 5, static.text_dim, generator=torch.Generator().manual_seed(seed))
        got, expected = (mg.generate_codes(mg.project_text(cond), mask, frames, top_k=1) for mg in (static, plain))
        assert torch.equal(got, expected), (seed, frames)
    assert len(static._static_steppers) == 1, "one cache for one conditioning shape"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_compiled_cuda_step_matches_eager():
    ours = MusicGen(random_musicgen(_config("wide"), seed=3).cuda())
    reference = random_musicgen(_config("wide"), seed=3).cuda()
    condition, mask, tokens = (t.cuda() for t in _inputs(ours))
    stepper = ours._stepper(condition, mask, capacity=tokens.shape[1])
    assert stepper._compiled is not None
    expected = _reference_logits(reference, condition, mask, tokens)[:, 3:]
    torch.testing.assert_close(_stepped_logits(stepper, tokens), expected, rtol=1e-3, atol=1e-3)
    assert stepper._compiled is not None, "the compiled step fell back to eager"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pagemap")
def test_windowed_generation_hands_back_the_decoders_pages_before_decoding(tmp_path):
    """Memory peaks while EnCodec decodes; the decoder's weights, mapped from disk, are not
    resident by then, and the next window samples the same music from the same bytes."""
    from video_bgm import windows

    config = _config("tiny")
    config.decoder.hidden_size, config.decoder.ffn_dim = 256, 1024  # weights of many whole pages
    random_musicgen(config, seed=3).save_pretrained(tmp_path)
    mg = MusicGen.from_pretrained(str(tmp_path))
    checkpoint = tmp_path / "model.safetensors"
    decoder_kib = sum(p.numel() * p.element_size() for p in mg.model.decoder.parameters()) // 1024
    cond = mg.project_text(torch.randn(1, 5, mg.text_dim, generator=torch.Generator().manual_seed(0)))
    mask = torch.ones(1, 5, dtype=torch.bool)
    resident = []
    decode = mg.decode

    def decode_and_measure(codes):
        resident.append(_mapped_kib(checkpoint))
        return decode(codes)

    mg.decode = decode_and_measure

    def music():
        chunks = windows.generate(mg, lambda start, seconds: (cond, mask, None), 150, window=2.0, overlap=1.0,
                                  generator=torch.Generator().manual_seed(1), top_k=50)
        return windows.render(chunks, 1, 150 * 640)

    first = music()
    assert len(resident) == 2  # two windows, each decoded once
    assert max(resident) < 0.2 * decoder_kib, (resident, decoder_kib)
    assert (music() == first).all()
