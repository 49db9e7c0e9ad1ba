"""The frozen MusicGen wrapper: sampling parity with transformers, guidance, loss, frozen weights."""

import pytest
import torch
import torch.nn.functional as F

from video_bgm import musicgen
from video_bgm.musicgen import MusicGen, sample
from video_bgm.random_models import musicgen_config, random_musicgen


@pytest.fixture(scope="module", params=[False, True], ids=["mono", "stereo"])
def mg(request):
    return MusicGen(random_musicgen(musicgen_config("tiny", stereo=request.param), seed=1))


def _condition(mg, batch=2, tokens=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    cond_t5 = torch.randn(batch, tokens, mg.text_dim, generator=g)
    mask = torch.ones(batch, tokens, dtype=torch.bool)
    mask[-1, 3:] = False  # a padded row
    return cond_t5, mask


def test_greedy_codes_match_transformers_generate(mg):
    """Same conditioning, guidance 3, greedy: our loop and transformers' generate give the same audio."""
    cond_t5, mask = _condition(mg)
    frames = 20
    doubled = torch.cat([cond_t5, torch.zeros_like(cond_t5)])
    doubled_mask = torch.cat([mask, torch.zeros_like(mask)]).long()
    reference = mg.model.generate(inputs=torch.zeros(2, 1, dtype=torch.long), encoder_outputs=(doubled,),
                                  attention_mask=doubled_mask, do_sample=False, guidance_scale=3.0,
                                  max_new_tokens=frames + mg.num_codebooks // mg.audio_channels - 1)
    codes = mg.generate_codes(mg.project_text(cond_t5), mask, frames, guidance_scale=3.0, top_k=1)
    assert codes.shape == (2, mg.num_codebooks, frames)
    audio = mg.decode(codes)
    assert audio.shape == (2, mg.audio_channels, frames * 640)
    torch.testing.assert_close(audio, reference, rtol=0, atol=0)


def test_unconditional_branch_is_musicgens_null_condition(mg):
    """The rows guidance adds are exactly what transformers' MusicGen computes unconditionally."""
    cond_t5, mask = _condition(mg)
    condition, cross_mask = mg._cross_attention_inputs(mg.project_text(cond_t5), mask, guidance_scale=3.0)
    start = torch.full((4 * mg.num_codebooks, 1), mg._pad_id)
    ours = mg._stepper(condition, cross_mask, capacity=1)(start).view(4, mg.num_codebooks, -1)

    null = mg.model.get_unconditional_inputs(num_samples=2)
    theirs = mg.model(encoder_outputs=null.encoder_outputs, attention_mask=null.attention_mask,
                      decoder_input_ids=start[: 2 * mg.num_codebooks]).logits
    theirs = theirs[:, -1].view(2, mg.num_codebooks, -1)
    torch.testing.assert_close(ours[2:], theirs)
    assert not torch.allclose(ours[:2], ours[2:]), "the conditional rows must differ from the null rows"


def test_guidance_changes_output_and_zero_guidance_ignores_condition(mg):
    cond_a, mask = _condition(mg, seed=0)
    cond_b, _ = _condition(mg, seed=1)
    a, b = mg.project_text(cond_a), mg.project_text(cond_b)

    def codes(cond, scale):
        return mg.generate_codes(cond, mask, 30, guidance_scale=scale, generator=torch.Generator().manual_seed(7))

    assert not torch.equal(codes(a, 3.0), codes(a, 1.0))
    assert not torch.equal(codes(a, 3.0), codes(b, 3.0))
    # scale 0 keeps only the unconditional branch: the condition cannot matter
    assert torch.equal(codes(a, 0.0), codes(b, 0.0))


def test_seeded_sampling_reproduces(mg):
    cond, mask = _condition(mg)
    cond = mg.project_text(cond)
    run = lambda seed: mg.generate_codes(cond, mask, 25, top_k=50, top_p=0.9,
                                         generator=torch.Generator().manual_seed(seed))
    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(3), run(4))


def test_loss_is_per_codebook_cross_entropy_with_delay_pattern(mg):
    """The loss equals a hand computation: delayed codes, shifted right, CE per codebook, averaged."""
    cond_t5, mask = _condition(mg)
    cond = mg.project_text(cond_t5)
    B, K, T, V = 2, mg.num_codebooks, 12, mg.model.config.decoder.vocab_size
    codes = torch.randint(0, V, (B, K, T), generator=torch.Generator().manual_seed(0))
    codes_mask = torch.ones(B, T, dtype=torch.bool)
    codes_mask[1, 9:] = False  # the second clip is shorter

    loss = mg.loss(cond, mask, codes, codes_mask)

    # hand computation, independent of delay_codes()
    pad, d = mg._pad_id, K // mg.audio_channels
    delayed = torch.full((B, K, T + d - 1), pad)
    for k in range(K):
        shift = k // mg.audio_channels
        delayed[:, k, shift:shift + T] = torch.where(codes_mask, codes[:, k], pad)
    inputs = torch.cat([torch.full((B, K, 1), pad), delayed[:, :, :-1]], dim=2)
    masked_cond = cond * mask[..., None]
    logits = mg.model.decoder(input_ids=inputs.reshape(B * K, -1), encoder_hidden_states=masked_cond,
                              encoder_attention_mask=mask.long()).logits.view(B, K, T + d - 1, V)
    per_codebook = []
    for k in range(K):
        target = delayed[:, k]
        keep = target != pad
        per_codebook.append(F.cross_entropy(logits[:, k][keep], target[keep]))
    torch.testing.assert_close(loss, torch.stack(per_codebook).mean())


def test_loss_gradients_reach_only_the_condition(mg):
    cond_t5, mask = _condition(mg)
    cond = mg.project_text(cond_t5).detach().requires_grad_(True)
    codes = torch.randint(0, mg.model.config.decoder.vocab_size, (2, mg.num_codebooks, 10))
    mg.loss(cond, mask, codes).backward()
    assert cond.grad is not None and cond.grad[0].abs().sum() > 0
    assert cond.grad[1, 3:].abs().sum() == 0, "masked tokens must get no gradient"
    assert all(p.grad is None for p in mg.model.parameters())


def test_encode_decode_shapes(mg):
    wav = torch.randn(1, mg.audio_channels, 32000) * 0.1
    codes = mg.encode_audio(wav)
    assert codes.shape == (1, mg.num_codebooks, 50)
    assert mg.decode(codes).shape == (1, mg.audio_channels, 32000)


def test_the_tiny_codec_tells_sounds_and_codes_apart(mg):
    """Different sounds get different codes, and different codes decode to different, audible audio
    (a random codec's biases would otherwise make every piece the same waveform)."""
    import math

    t = torch.arange(64000) / 32000
    low, high = (torch.sin(2 * math.pi * f * t).expand(1, mg.audio_channels, -1) * 0.5 for f in (220.0, 1760.0))
    a, b = mg.encode_audio(low), mg.encode_audio(high)
    assert (a != b).float().mean() > 0.5
    g = torch.Generator().manual_seed(0)
    codes = torch.randint(0, 64, (2, mg.num_codebooks, 100), generator=g)
    for x, y in ((mg.decode(a), mg.decode(b)), tuple(mg.decode(codes).unbind(0))):
        x, y = x.flatten(), y.flatten()
        assert abs(torch.corrcoef(torch.stack([x, y]))[0, 1]) < 0.5
        assert 0.01 < x.pow(2).mean().sqrt() < 1.0


def test_long_codes_decode_in_chunks_like_one_decode(mg, monkeypatch):
    """Memory: EnCodec never decodes more than a chunk and its context at once; sound: the
    crossfaded chunks are the one-piece decode (the same codes decoded twice at each seam)."""
    monkeypatch.setattr(musicgen, "DECODE_CHUNK", 1.0)
    codes = torch.randint(0, 64, (1, mg.num_codebooks, 263), generator=torch.Generator().manual_seed(0))
    whole = mg._decode(codes)
    seen = []
    codec_decode = mg.model.audio_encoder.decode
    monkeypatch.setattr(mg.model.audio_encoder, "decode", lambda c, *a: seen.append(c.shape[-1]) or codec_decode(c, *a))
    chunked = mg.decode(codes)
    longest = round((1.0 + 2 * musicgen.DECODE_CONTEXT) * mg.frame_rate)
    assert len(seen) >= 6 * (2 if mg.audio_channels == 2 else 1) and max(seen) <= longest
    assert chunked.shape == whole.shape == (1, mg.audio_channels, 263 * 640)
    assert (chunked - whole).abs().max() <= 1e-3 * whole.abs().max()


def test_sample_top_k_and_top_p_restrict_support():
    logits = torch.tensor([[4.0, 3.0, 2.0, 1.0, 0.0]]).repeat(2000, 1)
    g = torch.Generator().manual_seed(0)
    assert set(sample(logits, 1.0, 2, 0.0, g).tolist()) == {0, 1}
    # softmax mass: 0.64, 0.24, 0.09 ... -> the nucleus for p=0.8 is {0, 1}
    assert set(sample(logits, 1.0, 0, 0.8, g).tolist()) == {0, 1}
    assert set(sample(logits, 1.0, 1, 0.0, g).tolist()) == {0}
    assert len(set(sample(logits, 1.0, 0, 0.0, g).tolist())) == 5


def test_prompted_greedy_codes_match_transformers_generate_with_decoder_prompt(mg):
    """An audio-code prompt goes in as transformers feeds one: start token + codes, delay pattern applied."""
    cond_t5, mask = _condition(mg)
    prompt = torch.randint(0, 64, (2, mg.num_codebooks, 12), generator=torch.Generator().manual_seed(5))
    frames = 15
    doubled = torch.cat([cond_t5, torch.zeros_like(cond_t5)])
    doubled_mask = torch.cat([mask, torch.zeros_like(mask)]).long()
    start = torch.full((2 * mg.num_codebooks, 1), mg._pad_id)
    decoder_input_ids = torch.cat([start, prompt.reshape(2 * mg.num_codebooks, -1)], dim=1)
    reference = mg.model.generate(inputs=torch.zeros(2, 1, dtype=torch.long), encoder_outputs=(doubled,),
                                  attention_mask=doubled_mask, decoder_input_ids=decoder_input_ids,
                                  do_sample=False, guidance_scale=3.0,
                                  max_new_tokens=frames + mg.num_codebooks // mg.audio_channels - 1)
    ours = mg.generate_codes(mg.project_text(cond_t5), mask, frames, guidance_scale=3.0, top_k=1, prompt=prompt)
    assert ours.shape == (2, mg.num_codebooks, frames)
    # transformers returns the audio of prompt + continuation
    torch.testing.assert_close(mg.decode(torch.cat([prompt, ours], dim=2)), reference, rtol=0, atol=0)


def test_a_prompt_is_continued_exactly_as_if_generated_in_one_go(mg):
    """Greedy: prompting with the first P frames of a run gives that run's remaining frames."""
    cond, mask = _condition(mg)
    cond = mg.project_text(cond)
    whole = mg.generate_codes(cond, mask, 30, guidance_scale=3.0, top_k=1)
    steps = []
    rest = mg.generate_codes(cond, mask, 18, guidance_scale=3.0, top_k=1, prompt=whole[..., :12],
                             progress=lambda done, total: steps.append((done, total)))
    assert torch.equal(rest, whole[..., 12:])
    delays = mg.num_codebooks // mg.audio_channels
    assert steps[-1] == (18 + delays - 1, 18 + delays - 1)  # only sampled steps are counted
    with pytest.raises(ValueError, match="after a 12-frame prompt"):
        mg.generate_codes(cond, mask, mg.max_frames - 11, prompt=whole[..., :12])
