"""The evaluation's reference networks with random weights, saved where their real weight files go.

Each ``save_*`` writes one file into the current ``TORCH_HOME``'s hub cache (set it first, e.g. with
monkeypatch.setenv), in the real file's format, so the product's loaders (``evaluation/weights.py``)
find it as they would find the downloaded one. Nothing here is downloaded.
"""

from __future__ import annotations

import torch

from video_bgm.evaluation import weights

# ImageBind's stand-in: the package's own ImageBindModel, small widths and one block per modality
# (same preprocessors, patch sizes, heads and postprocessors as imagebind_huge).
IMAGEBIND_SMALL = dict(vision_embed_dim=32, vision_num_blocks=1, vision_num_heads=2, audio_embed_dim=32,
                       audio_num_blocks=1, audio_num_heads=2, text_embed_dim=32, text_num_blocks=1, text_num_heads=2,
                       depth_embed_dim=32, depth_num_blocks=1, depth_num_heads=2, thermal_embed_dim=32,
                       thermal_num_blocks=1, thermal_num_heads=2, imu_embed_dim=32, imu_num_blocks=1,
                       imu_num_heads=2, out_embed_dim=16)


def _save(state, url: str):
    path = weights.cached_path(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def he_normal(model: torch.nn.Module, seed: int) -> dict:
    """The state dict of ``model`` with He-normal random weights in its Conv2d and Linear layers
    (biases 0; BatchNorm, STFT and mel kernels as built). PyTorch's default init shrinks the signal
    about 2.4x per layer: after CNN14's 12 convolutions every clip would get the same embedding to
    1e-5, below what FAD's eps resolves, so the known-answer tests would see nothing."""
    torch.manual_seed(seed)
    for module in model.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
    return model.state_dict()


def save_vggish(seed: int = 0):
    """VGGish's file: a plain state dict of torchvggish's network."""
    from torchvggish.torchvggish import VGG, make_layers

    from video_bgm.evaluation.embeddings import VGGISH_URL

    return _save(he_normal(VGG(make_layers(), postprocess=False), seed), VGGISH_URL)


def save_panns(seed: int = 1):
    """CNN14's file: {"model": state dict}, as PANNs publish it."""
    from video_bgm.evaluation.embeddings import PANNS_URL, Cnn14

    return _save({"model": he_normal(Cnn14(), seed)}, PANNS_URL)


def save_passt(pretrained_length: int, seed: int = 0) -> dict:
    """PaSST's file for that length: hear21passt's network. PaSST zero-initialises its heads, which
    would make every logit 0 and every piece alike, so the heads get random weights too."""
    from video_bgm.evaluation import kld

    torch.manual_seed(seed)
    net = kld.build_passt(pretrained_length).net
    with torch.no_grad():
        for name in ("head.1", "head_dist"):
            module = net.get_submodule(name)
            module.weight.normal_(0, 0.2)
            module.bias.normal_(0, 1.0)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    _save(state, kld.weight_url(pretrained_length))
    return state


def save_imagebind_stand_in(monkeypatch, seed: int = 0) -> dict:
    """The small ImageBindModel in place of imagebind_huge (monkeypatched for the test), its random
    weights saved as imagebind_huge.pth."""
    from video_bgm.evaluation import imagebind as ib

    package = ib.model_module()
    monkeypatch.setattr(package, "imagebind_huge", lambda pretrained=False: package.ImageBindModel(**IMAGEBIND_SMALL))
    torch.manual_seed(seed)
    state = package.ImageBindModel(**IMAGEBIND_SMALL).state_dict()
    _save(state, ib.URL)
    return state
