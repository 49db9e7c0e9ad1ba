"""Frozen per-frame image encoders: uint8 frames [T, H, W, 3] -> features [T, F].

Each encoder carries its own model's preprocessing: CLIP reads resize/crop/mean/std from the
model's image-processor config; ResNet-50 uses torchvision's IMAGENET1K_V2 preset (resize 232,
centre crop 224, ImageNet mean/std). Both run on uint8 tensors, except for models trained on PIL
images (``FrameEncoderConfig.preprocessing == "pil"``: the thesis's), which get PIL images again.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch import nn
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from .config import FrameEncoderConfig
from .errors import ModelError
from .refs import first_line, load_pretrained, resolve_reference

_INTERPOLATION = {0: InterpolationMode.NEAREST, 2: InterpolationMode.BILINEAR, 3: InterpolationMode.BICUBIC}


class FrameEncoder(nn.Module):
    """Base class: frozen, eval mode, batched and device-aware ``encode``."""

    feature_dim: int
    resize: int            # shortest edge after resizing
    crop: int              # square centre crop
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: InterpolationMode = InterpolationMode.BILINEAR

    def freeze(self) -> "FrameEncoder":
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        return self

    def train(self, mode: bool = True):
        return super().train(False)  # frozen: dropout/batch-norm statistics never change

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 [T, H, W, 3] -> float pixels [T, 3, crop, crop] on the encoder's device."""
        x = frames.to(self.device).permute(0, 3, 1, 2)  # (T, 3, H, W)
        x = TF.resize(x, [self.resize], interpolation=self.interpolation, antialias=True)
        x = TF.center_crop(x, [self.crop, self.crop])
        x = x.float() / 255.0
        return TF.normalize(x, list(self.mean), list(self.std))

    def embed(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels [T, 3, crop, crop] -> features [T, F]."""
        raise NotImplementedError

    @torch.no_grad()
    def encode(self, frames: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
        """uint8 frames [T, H, W, 3] -> float32 features [T, F] on the encoder's device.

        Frames go through in batches so memory stays bounded for long videos.
        """
        out = [self.embed(self.preprocess(frames[i : i + batch_size])).float()
               for i in range(0, len(frames), batch_size)]
        if not out:
            return torch.zeros(0, self.feature_dim, device=self.device)
        return torch.cat(out)


class CLIPFrameEncoder(FrameEncoder):
    """CLIP vision tower + projection (transformers); features are CLIP image embeddings."""

    def __init__(self, name: str, revision: str | None = None):
        super().__init__()
        from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

        self.model = load_pretrained(CLIPVisionModelWithProjection, name, "the CLIP frame encoder", revision)
        try:
            processor = CLIPImageProcessor.from_pretrained(name, revision=revision)
        except (OSError, ValueError) as err:
            raise ModelError(name, f"cannot load CLIP's image processor config ({first_line(err)})") from None
        self.feature_dim = self.model.config.projection_dim
        self.resize = processor.size["shortest_edge"]
        self.crop = processor.crop_size["height"]
        self.mean, self.std = tuple(processor.image_mean), tuple(processor.image_std)
        self.interpolation = _INTERPOLATION.get(int(processor.resample), InterpolationMode.BICUBIC)
        self.freeze()

    def embed(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixels.to(self.model.dtype)).image_embeds


class ResNet50FrameEncoder(FrameEncoder):
    """torchvision ResNet-50 without its classifier: 2048-d pooled features per frame."""

    feature_dim = 2048
    resize, crop = 232, 224
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

    def __init__(self, weights: str | None = "IMAGENET1K_V2", state_dict: dict | None = None,
                 preprocessing: str = "tensor"):
        super().__init__()
        from torchvision.models import ResNet50_Weights, resnet50

        self.model = resnet50(weights=ResNet50_Weights[weights] if weights else None)
        self.model.fc = nn.Identity()
        if state_dict is not None:
            self.model.load_state_dict(state_dict)
        # torchvision's own preset (its uint8 resize rounds differently from transforms.v2's).
        # The thesis ran it on PIL images, whose fixed-point resize puts ~18 % of the pixels one
        # level away from the tensor resize: its models get PIL images again ("pil").
        self.preset = ResNet50_Weights.IMAGENET1K_V2.transforms()
        self.preprocessing = preprocessing
        self.freeze()

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 [T, H, W, 3] -> float pixels [T, 3, 224, 224] (resize 232, centre crop, ImageNet mean/std)."""
        if self.preprocessing == "pil":
            images = [Image.fromarray(frame) for frame in frames.cpu().numpy()]
            return torch.stack([self.preset(image) for image in images]).to(self.device)
        return self.preset(frames.to(self.device).permute(0, 3, 1, 2))

    def embed(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(pixels)


def build_frame_encoder(config: FrameEncoderConfig, base_dir: Path | None = None,
                        bundled_state: dict | None = None) -> FrameEncoder:
    """Build the frame encoder a model config names; relative paths are relative to ``base_dir``."""
    if config.kind == "clip":
        return CLIPFrameEncoder(resolve_reference(config.name, base_dir, "frame_encoder.name"), config.revision)
    if config.name == "bundled":
        if not bundled_state:
            raise ModelError(base_dir, "frame_encoder.name is 'bundled' but model.safetensors holds no frame_encoder.* weights")
        return ResNet50FrameEncoder(weights=None, state_dict=bundled_state, preprocessing=config.preprocessing)
    try:
        return ResNet50FrameEncoder(weights=config.name, preprocessing=config.preprocessing)
    except KeyError:
        raise ModelError(base_dir, f"frame_encoder.name: unknown ResNet-50 weights {config.name!r} "
                                   "(use 'IMAGENET1K_V2' or 'bundled')") from None
    except (OSError, RuntimeError) as err:  # no network, or a broken file in torch's hub cache
        raise ModelError(f"ResNet50_Weights.{config.name}",
                         f"cannot load torchvision's weights ({first_line(err)})") from None
