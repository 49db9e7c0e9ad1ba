"""KL divergence of AudioSet label distributions from PaSST, exactly as audiocraft computes it.

Follows ``PasstKLDivergenceMetric`` and ``kl_divergence`` in audiocraft's
``audiocraft/metrics/kld.py`` (facebookresearch/audiocraft: the same from v1.1.0 to v1.3.0 and main,
since commit 2454f80 of August 2023, "Update KLD with PaSST to reproduce MusicGen results"; v1.0.0
padded short segments instead), with ``convert_audio`` from ``audiocraft/data/audio_utils.py``:

1. Audio is resampled to 32 kHz with ``julius.resample_frac`` (default zeros=24, rolloff=0.945) and
   downmixed to mono.
2. It is cut, without padding or overlap, into consecutive segments of the classifier's length
   (``pretrained_length`` seconds: 10 s -> ``hear21passt.base``, arch ``passt_s_swa_p16_128_ap476``;
   20 s -> ``hear21passt.base20sec``, arch ``passt_20sec``; 30 s -> ``hear21passt.base30sec``); a
   segment of 0.15 s (4,800 samples) or less, in practice only the last one, is dropped.
3. Each segment goes on its own through hear21passt's ``PasstBasicWrapper`` in ``mode="logits"`` (its
   ``AugmentMelSTFT`` front end in eval mode, no augmentation) -> 527 AudioSet logits, and
   ``softmax`` over the 527 classes gives that segment's label distribution. Segments are *not*
   averaged into one distribution per piece.
4. Generated segment i is compared with reference segment i (audiocraft cuts both with the
   reference's length): ``F.kl_div((p_gen + 1e-6).log(), p_ref, reduction="none").sum(-1)``
   = sum_c p_ref(c) * (log p_ref(c) - log(p_gen(c) + 1e-6)), i.e. KL(reference || generated), in
   nats. audiocraft reports this as ``kld`` (also ``kld_pq``); its ``kld_qp`` is the same with the
   arguments swapped, and ``kld_both`` their sum.
5. The score is the sum of the KL of every segment pair over the set, divided by the number of
   segment pairs; with pieces no longer than one segment that is the mean over pieces.

Which length: audiocraft's MusicGen solver config (``config/solver/musicgen/default.yaml``,
``metrics.kld.passt.pretrained_length: 20``) uses the 20 s model, so MusicGen's published KL used it;
the class's own default and the AudioGen config use 10 s. ``PasstClassifier`` defaults to 20.

Inputs: audiocraft's MusicGen evaluation loudness-normalises the generated audio before the metric
(``generate.audio``: strategy ``loudness``, 14 dB headroom) and cuts it to the reference's length;
the reference audio is used as loaded. Here each file is scored as it is: give generated and
reference pieces the same span (``EmbeddingCache.embed_file(..., seconds)``) so their segments pair
up as audiocraft's do.

Because of the 1e-6 added to the generated distribution only, a piece compared with itself gives
sum_c p(c) * log(p(c) / (p(c) + 1e-6)) ~ -527e-6, not exactly 0; audiocraft reports that too.

Published "KL" numbers are comparable only when they come from this code path (audiocraft's metric,
PaSST, softmax, KL(reference || generated), same ``pretrained_length``). Others are not: AudioLDM's
``audioldm_eval`` takes PANNs (Cnn14) outputs, with softmax ("KL") or sigmoid ("KL_Sigmoid"); some
papers average one distribution per clip first; and at least one peer reports a mutual-information
score under the name "KL".

``PasstClassifier`` is an embedder for ``EmbeddingCache``: ``embed`` returns the raw logits
[segments, 527] of a piece, so a cached file can be scored without the model; ``label_distribution``
and ``kl_divergence`` turn them into audiocraft's numbers.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterable

import numpy as np
import torch

from . import weights

SAMPLE_RATE = 32_000
NUM_CLASSES = 527
EPSILON = 1e-6  # added to the generated distribution before its log (audiocraft's kl_divergence)
MIN_SECONDS = 0.15  # segments of this length or shorter are dropped (audiocraft's min_duration)
DEFAULT_LENGTH = 20  # seconds: audiocraft's MusicGen evaluation config

# pretrained_length -> (hear21passt arch for get_model, its default_cfgs key, input_tdim, weight URL):
# the arch and input_tdim hear21passt.base / base20sec / base30sec pass, the URL hear21passt downloads.
ARCHS = {
    10: ("passt_s_swa_p16_128_ap476", "passt_s_swa_p16_128_ap476", 998,
         "https://github.com/kkoutini/PaSST/releases/download/v0.0.1-audioset/passt-s-f128-p16-s10-ap.476-swa.pt"),
    20: ("passt_20sec", "passt-s-f128-20sec-p16-s10-ap474-swa", 2000,
         "https://github.com/kkoutini/PaSST/releases/download/v0.0.5/passt-s-f128-20sec-p16-s10-ap.474-swa.pt"),
    30: ("passt_30sec", "passt-s-f128-30sec-p16-s10-ap473-swa", 3000,
         "https://github.com/kkoutini/PaSST/releases/download/v0.0.5/passt-s-f128-30sec-p16-s10-ap.473-swa.pt"),
}


def weight_url(pretrained_length: int = DEFAULT_LENGTH) -> str:
    if pretrained_length not in ARCHS:
        raise ValueError(f"PaSST pretrained_length must be one of {sorted(ARCHS)} seconds, not {pretrained_length}")
    return ARCHS[pretrained_length][3]


@contextlib.contextmanager
def _quiet():
    """PaSST prints its architecture and tensor shapes, and warns about the input's length; hush."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def build_passt(pretrained_length: int = DEFAULT_LENGTH) -> torch.nn.Module:
    """hear21passt's ``get_basic_model(mode="logits")`` of that length, with random weights (no download)."""
    from hear21passt.models.passt import get_model
    from hear21passt.models.preprocess import AugmentMelSTFT
    from hear21passt.wrapper import PasstBasicWrapper

    arch, _, tdim, _ = ARCHS[pretrained_length]
    with _quiet():
        # the front end exactly as hear21passt.base*.get_basic_model builds it
        mel = AugmentMelSTFT(n_mels=128, sr=32000, win_length=800, hopsize=320, n_fft=1024, freqm=48, timem=192,
                             htk=False, fmin=0.0, fmax=None, norm=1, fmin_aug_range=10, fmax_aug_range=2000)
        net = get_model(arch=arch, pretrained=False, input_tdim=tdim)
    return PasstBasicWrapper(mel=mel, net=net, max_model_window=pretrained_length * 1000, mode="logits").eval()


def _pretrained_state(net: torch.nn.Module, state: dict) -> dict:
    """What hear21passt's (timm's) ``load_pretrained`` does to the file before loading it strictly."""
    from hear21passt.models.helpers.vit_helpers import adapt_input_conv
    from hear21passt.models.passt import checkpoint_filter_fn

    state = checkpoint_filter_fn(state, net)
    if "patch_embed.proj.weight" in state:  # first_conv, in_chans=1: a no-op for PaSST's own files
        state["patch_embed.proj.weight"] = adapt_input_conv(1, state["patch_embed.proj.weight"])
    return state


class PasstClassifier:
    """PaSST AudioSet logits, one row [527] per segment of ``pretrained_length`` s at 32 kHz (mono)."""

    name = "passt"
    sample_rate = SAMPLE_RATE

    def __init__(self, device: str | torch.device = "cpu", pretrained_length: int = DEFAULT_LENGTH):
        url = weight_url(pretrained_length)
        state = weights.load_state_dict(url, "PaSST")  # before building: offline fails at once
        self.pretrained_length = pretrained_length
        self.arch = ARCHS[pretrained_length][0]
        self.weights_file = weights.filename_of(url)
        self.max_frames = int(pretrained_length * SAMPLE_RATE)
        self.min_frames = int(MIN_SECONDS * SAMPLE_RATE)
        model = build_passt(pretrained_length)
        weights.load_into(model.net, _pretrained_state(model.net, state), "PaSST",
                          weights.cached_path(url))
        self.model = model.to(device).eval()

    @staticmethod
    def is_cached(pretrained_length: int = DEFAULT_LENGTH) -> bool:
        return weights.is_cached(weight_url(pretrained_length))

    @property
    def device(self) -> torch.device:
        return self.model.device_proxy.device

    def settings(self) -> dict:
        return {"kind": "passt", "arch": self.arch, "weights": self.weights_file,
                "pretrained_length": self.pretrained_length, "min_frames": self.min_frames,
                "resample": "julius.resample_frac", "output": "logits"}

    @staticmethod
    def resample(audio: np.ndarray, rate: int) -> np.ndarray:
        """Mono float32 [S] at ``rate`` Hz -> [S'] at 32 kHz, as audiocraft's ``convert_audio`` (julius)."""
        import julius

        wav = torch.as_tensor(np.asarray(audio, dtype=np.float32))
        return julius.resample_frac(wav, int(rate), SAMPLE_RATE).numpy()

    def segments(self, audio: np.ndarray) -> list[torch.Tensor]:
        """Mono [S] at 32 kHz -> segments [1, <= max_frames] (no padding; <= 0.15 s ones dropped)."""
        wav = torch.as_tensor(np.asarray(audio, dtype=np.float32))
        return [s[None] for s in torch.split(wav, self.max_frames, dim=-1) if s.size(-1) > self.min_frames]

    @torch.no_grad()
    def embed(self, audio: np.ndarray) -> np.ndarray:
        """Mono float32 [S] at 32 kHz -> logits [segments, 527] (float32; [0, 527] for <= 0.15 s of audio)."""
        rows = []
        with _quiet():
            for segment in self.segments(audio):
                rows.append(self.model(segment.to(self.device)).float().cpu())
        if not rows:
            return np.zeros((0, NUM_CLASSES), dtype=np.float32)
        return torch.cat(rows).numpy()


def label_distribution(logits) -> np.ndarray:
    """Logits [n, C] (C = 527 for PaSST) -> label probabilities [n, C]: softmax over classes per segment.

    This is the quantity audiocraft compares: one distribution per segment, not one per piece.
    """
    x = torch.as_tensor(np.asarray(logits, dtype=np.float32))
    return torch.softmax(x, dim=-1).numpy()


def segment_kl(generated, reference, epsilon: float = EPSILON) -> np.ndarray:
    """KL(reference || generated) in nats for each segment pair: logits [n, C] and [m, C] -> [min(n, m)].

    Segment i of the generated piece is compared with segment i of the reference (audiocraft cuts
    both to the reference's length, so n == m there; give both files the same span to match it).
    Per pair: sum_c p_ref(c) * (log p_ref(c) - log(p_gen(c) + epsilon)), computed as audiocraft does
    with ``torch.nn.functional.kl_div((p_gen + epsilon).log(), p_ref, reduction="none").sum(-1)``.
    """
    gen, ref = np.asarray(generated, dtype=np.float32), np.asarray(reference, dtype=np.float32)
    if gen.ndim != 2 or ref.ndim != 2 or gen.shape[1] != ref.shape[1]:
        raise ValueError(f"logits must be [segments, classes] alike, not {gen.shape} and {ref.shape}")
    k = min(len(gen), len(ref))
    pred_probs = torch.from_numpy(label_distribution(gen[:k]))
    target_probs = torch.from_numpy(label_distribution(ref[:k]))
    kl = torch.nn.functional.kl_div((pred_probs + epsilon).log(), target_probs, reduction="none")
    return kl.sum(-1).numpy()


def kl_divergence(generated, reference, epsilon: float = EPSILON) -> float:
    """One piece's KL(reference || generated) in nats: the mean of ``segment_kl`` over its segment pairs.

    ``generated``, ``reference``: logits [n, 527] and [m, 527] from ``PasstClassifier.embed``. Swapping
    them gives audiocraft's ``kld_qp``. A piece with itself gives ~ -C * epsilon, not 0 (see the module).
    """
    kl = segment_kl(generated, reference, epsilon)
    if len(kl) == 0:
        raise ValueError("no segment longer than 0.15 s to compare")
    return float(kl.mean())


def mean_kl(pairs: Iterable[tuple], epsilon: float = EPSILON) -> float:
    """audiocraft's ``kld`` over a set: (generated, reference) logits per clip -> sum of every segment
    pair's KL / number of segment pairs (nats). Pieces with no segment longer than 0.15 s add nothing."""
    total, count = 0.0, 0
    for generated, reference in pairs:
        kl = segment_kl(generated, reference, epsilon)
        total += float(kl.astype(np.float64).sum())
        count += len(kl)
    if count == 0:
        raise ValueError("no segment pairs to average")
    return total / count
