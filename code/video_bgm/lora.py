"""LoRA adapters on MusicGen's decoder (the thesis's PEFT models), applied with ``peft``.

An adapter folder is PEFT's: ``adapter_config.json`` + ``adapter_model.safetensors`` (or ``.bin``).
Two namings are read:
- audiocraft's LM (the thesis's ``musicgen_peft_final``): ``base_model.model.transformer.layers.{i}.
  {self_attn.out_proj, cross_attention.out_proj, linear1, linear2}.lora_{A,B}.weight``;
- transformers' ``MusicgenForCausalLM`` (what we write): ``base_model.model.model.decoder.layers.{i}.
  {self_attn.out_proj, encoder_attn.out_proj, fc1, fc2}.lora_{A,B}.weight``.
Both become transformers module names; ``apply`` wraps the decoder with peft, loads the weights and
merges them with peft's ``merge_and_unload`` (W += scale * B @ A), so sampling costs nothing extra.
"""

from __future__ import annotations

import json
import logging
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .errors import ModelError
from .refs import first_line

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
_PEFT_PREFIX = "base_model.model."
_TRANSFORMERS_LAYERS = "model.decoder.layers."

# audiocraft LMModel module (within transformer.layers.{i}) -> transformers MusicgenDecoderLayer module
AUDIOCRAFT_TO_TRANSFORMERS = {
    "self_attn.out_proj": "self_attn.out_proj",
    "cross_attention.out_proj": "encoder_attn.out_proj",
    "linear1": "fc1",
    "linear2": "fc2",
}
_TRANSFORMERS_MODULES = set(AUDIOCRAFT_TO_TRANSFORMERS.values())
_KEY = re.compile(r"(?P<module>.+)\.(?P<part>lora_A|lora_B)\.weight")

log = logging.getLogger(__name__)


@dataclass
class LoraAdapter:
    """LoRA weights keyed by transformers module (``model.decoder.layers.0.fc1``) -> (A [r, in], B [out, r])."""

    weights: dict[str, tuple[torch.Tensor, torch.Tensor]]
    r: int
    alpha: float
    dropout: float = 0.0
    use_rslora: bool = False
    source: str = ""

    @property
    def scale(self) -> float:
        return self.alpha / (self.r ** 0.5 if self.use_rslora else self.r)

    @property
    def is_zero(self) -> bool:
        """Whether every update B @ A is exactly zero (an adapter never trained: PEFT starts B at 0)."""
        return all(not a.any() or not b.any() for a, b in self.weights.values())

    def state_dict(self) -> dict[str, torch.Tensor]:
        """PEFT's key layout relative to the decoder (no ``base_model.model.`` prefix)."""
        out = {}
        for module, (a, b) in self.weights.items():
            out[f"{module}.lora_A.weight"], out[f"{module}.lora_B.weight"] = a, b
        return out

    def peft_config(self, base_model: str | None = None):
        from peft import LoraConfig

        return LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout, use_rslora=self.use_rslora,
                          target_modules=sorted(self.weights), base_model_name_or_path=base_model)

    def apply(self, musicgen) -> None:
        """Merge this adapter into ``musicgen``'s decoder (a ``video_bgm.musicgen.MusicGen``), in place."""
        try:
            from peft import get_peft_model, set_peft_model_state_dict
        except ImportError:
            raise ModelError(self.source, "a LoRA adapter needs the peft package: pip install peft") from None

        decoder = musicgen.model.decoder  # MusicgenForCausalLM
        modules = dict(decoder.named_modules())
        for name, (a, b) in self.weights.items():
            layer = modules.get(name)
            if not isinstance(layer, torch.nn.Linear):
                raise ModelError(self.source, f"the adapter adapts {name}, which {musicgen.name}'s decoder does not have "
                                              "(an adapter for another MusicGen size?)")
            if a.shape[1] != layer.in_features or b.shape[0] != layer.out_features:
                raise ModelError(self.source, f"the adapter's {name} is {b.shape[0]}x{a.shape[1]} but {musicgen.name}'s "
                                              f"is {layer.out_features}x{layer.in_features} (an adapter for another MusicGen size?)")
        with warnings.catch_warnings():  # peft asks the decoder about gradient checkpointing, which transformers deprecates
            warnings.simplefilter("ignore", FutureWarning)
            wrapped = get_peft_model(decoder, self.peft_config(), adapter_name="default")
        state = {_PEFT_PREFIX + key: value for key, value in self.state_dict().items()}
        result = set_peft_model_state_dict(wrapped, state, adapter_name="default")
        if result.unexpected_keys:
            raise ModelError(self.source, f"peft did not place {result.unexpected_keys[0]}")
        # peft's own merge (W += scale * B @ A) puts the plain Linear layers back: the decoder is frozen,
        # so the merged weights are all sampling needs.
        musicgen.model.decoder = wrapped.merge_and_unload(safe_merge=True)
        musicgen.model.decoder.requires_grad_(False)

    def save(self, folder: Path, base_model: str | None = None) -> None:
        """Write a PEFT adapter folder for transformers' ``MusicgenForCausalLM``."""
        folder.mkdir(parents=True, exist_ok=True)
        self.peft_config(base_model).save_pretrained(str(folder))
        state = {_PEFT_PREFIX + k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(state, folder / ADAPTER_WEIGHTS[0], metadata={"format": "pt"})


def transformers_module(module: str) -> str | None:
    """An adapted module's name (PEFT prefix removed) in transformers' naming, or None if it has none."""
    if module.startswith("transformer.layers."):  # audiocraft
        index, _, rest = module[len("transformer.layers."):].partition(".")
        if index.isdigit() and rest in AUDIOCRAFT_TO_TRANSFORMERS:
            return f"{_TRANSFORMERS_LAYERS}{index}.{AUDIOCRAFT_TO_TRANSFORMERS[rest]}"
        return None
    if module.startswith(_TRANSFORMERS_LAYERS):
        index, _, rest = module[len(_TRANSFORMERS_LAYERS):].partition(".")
        return module if index.isdigit() and rest in _TRANSFORMERS_MODULES else None
    return None


def read_adapter(folder: Path, defaults: dict | None = None) -> LoraAdapter:
    """Read a PEFT LoRA adapter folder in audiocraft's or transformers' naming.

    ``defaults`` (``r``, ``lora_alpha``, ``lora_dropout``) stand in for a missing ``adapter_config.json``.
    """
    folder = Path(folder)
    config = dict(defaults or {})
    config_path = folder / ADAPTER_CONFIG
    if config_path.is_file():
        try:
            config.update(json.loads(config_path.read_text()))
        except json.JSONDecodeError as err:
            raise ModelError(folder, f"{ADAPTER_CONFIG} is not valid JSON ({err})") from None
    elif not defaults:
        raise ModelError(folder, f"not a PEFT adapter folder (no {ADAPTER_CONFIG})")
    peft_type = str(config.get("peft_type", "LORA")).upper()
    if peft_type != "LORA":
        raise ModelError(folder, f"{ADAPTER_CONFIG}: peft_type {peft_type!r} is not supported (only LORA)")
    for key, ok in (("use_dora", False), ("fan_in_fan_out", False), ("bias", "none")):
        if config.get(key, ok) not in (ok, None):
            raise ModelError(folder, f"{ADAPTER_CONFIG}: {key}={config[key]!r} is not supported")
    if "r" not in config or "lora_alpha" not in config:
        raise ModelError(folder, f"{ADAPTER_CONFIG}: needs r and lora_alpha")
    r, alpha = int(config["r"]), float(config["lora_alpha"])

    state = _read_weights(folder)
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in state.items():
        match = _KEY.fullmatch(key[len(_PEFT_PREFIX):] if key.startswith(_PEFT_PREFIX) else key)
        module = transformers_module(match["module"]) if match else None
        if module is None:
            raise ModelError(folder, f"adapter weight {key} has no counterpart in transformers' MusicGen decoder "
                                     "(expected LoRA on out_proj / linear1 / linear2 of the decoder layers)")
        pairs.setdefault(module, {})[match["part"]] = tensor.float()
    if not pairs:
        raise ModelError(folder, "the adapter holds no LoRA weights")
    weights = {}
    for module, parts in sorted(pairs.items()):
        if set(parts) != {"lora_A", "lora_B"}:
            raise ModelError(folder, f"adapter weights for {module} lack {({'lora_A', 'lora_B'} - set(parts)).pop()}")
        a, b = parts["lora_A"], parts["lora_B"]
        if a.dim() != 2 or b.dim() != 2 or a.shape[0] != r or b.shape[1] != r:
            raise ModelError(folder, f"adapter weights for {module} have shapes {tuple(a.shape)} and {tuple(b.shape)}, "
                                     f"not rank r={r} as its config says")
        weights[module] = (a, b)
    adapter = LoraAdapter(weights, r, alpha, float(config.get("lora_dropout") or 0.0),
                          bool(config.get("use_rslora", False)), source=str(folder))
    if adapter.is_zero:  # the thesis's _peft adapters: its optimizer held only the video encoder
        log.warning("%s: the adapter's update is exactly zero (every LoRA B @ A is 0): MusicGen's decoder stays "
                    "as published", folder)
    return adapter


def _read_weights(folder: Path) -> dict[str, torch.Tensor]:
    for name in ADAPTER_WEIGHTS:
        path = folder / name
        if not path.is_file():
            continue
        try:
            if name.endswith(".safetensors"):
                return load_file(path)
            return torch.load(path, map_location="cpu", weights_only=True)  # never unpickle code
        except Exception as err:
            raise ModelError(folder, f"{name} cannot be read ({first_line(err)})") from None
    raise ModelError(folder, f"no adapter weights ({' or '.join(ADAPTER_WEIGHTS)})")
