"""Random LoRAs in kohya's file format for the tiny SDXL-class model (host tests and the benchmark).

The keys are the ones kohya's sd-scripts write for SDXL (``lora_unet_<block path with _>``,
``lora_te1_`` / ``lora_te2_`` for the two text encoders, ``.lora_down.weight``,
``.lora_up.weight``, ``.alpha``); ComfyUI's own key mapping reads them, as it reads a real file.
"""

from __future__ import annotations

from pathlib import Path

import torch

TE_LAYERS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "mlp.fc1", "mlp.fc2")


def unet_targets(unet: torch.nn.Module, convs: bool = True) -> list[tuple[str, torch.nn.Module]]:
    """Every linear of the transformer blocks (attention, feed-forward, proj_in/out) and, with ``convs``, the
    ResBlocks' 3x3 convolutions: (path under diffusion_model, module)."""
    out = []
    for name, m in unet.named_modules():
        if (
            isinstance(m, torch.nn.Linear)
            and (".transformer_blocks." in name or name.endswith(("proj_in", "proj_out")))
            or convs
            and isinstance(m, torch.nn.Conv2d)
            and name.endswith(("in_layers.2", "out_layers.3"))
        ):
            out.append((name, m))
    return out


def kohya_lora(
    model, clip=None, rank: int = 4, seed: int = 0, scale: float = 0.1, convs: bool = True, only: tuple[str, ...] | None = None
) -> dict[str, torch.Tensor]:
    """A random LoRA state dict for ``model`` (a ModelPatcher) and, with ``clip``, its text encoders.

    ``only``: keep UNet layers whose path contains one of these substrings (e.g. ``("attn", "ff.")``).
    """
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}

    def add(key: str, out_dim: int, in_shape: tuple[int, ...]):
        sd[f"{key}.lora_down.weight"] = torch.randn((rank, *in_shape), generator=g) * scale
        up_shape = (out_dim, rank, 1, 1) if len(in_shape) == 3 else (out_dim, rank)
        sd[f"{key}.lora_up.weight"] = torch.randn(up_shape, generator=g) * scale
        sd[f"{key}.alpha"] = torch.tensor(float(rank))

    for name, m in unet_targets(model.model.diffusion_model, convs):
        if only is not None and not any(s in name for s in only):
            continue
        key = "lora_unet_" + name.replace(".", "_")
        if isinstance(m, torch.nn.Linear):
            add(key, m.out_features, (m.in_features,))
        else:
            add(key, m.out_channels, (m.in_channels, *m.kernel_size))
    if clip is not None:
        te = clip.cond_stage_model.state_dict()
        for prefix, tag in (("clip_l", "lora_te1"), ("clip_g", "lora_te2")):
            layer = 0
            while f"{prefix}.transformer.text_model.encoder.layers.{layer}.mlp.fc1.weight" in te:
                for c in TE_LAYERS:
                    w = te[f"{prefix}.transformer.text_model.encoder.layers.{layer}.{c}.weight"]
                    add(f"{tag}_text_model_encoder_layers_{layer}_{c.replace('.', '_')}", w.shape[0], (w.shape[1],))
                layer += 1
    return sd


def write_lora(sd: dict[str, torch.Tensor], folder: Path, name: str) -> Path:
    """Save as safetensors (the format LoRA files come in) into ``folder``."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    return path


def write_tiny_loras(folder: Path, names: list[str]) -> None:
    """Random kohya LoRAs for the tiny test model (UNet + both text encoders) under ``names``, made in a
    child process: the tiny model needs ComfyUI imported, which a test session driving the browser cannot do."""
    import subprocess
    import sys

    missing = [n for n in names if not (folder / n).exists()]
    if missing:
        subprocess.run([sys.executable, __file__, str(folder), *missing], check=True, timeout=600)


if __name__ == "__main__":
    import sys

    from conftest import HOST, HOST_NODES

    sys.path[:0] = [str(HOST), str(HOST_NODES)]
    from comfy.cli_args import args

    args.cpu = True
    from pakati_test_nodes.tiny_sdxl import tiny_sdxl

    model, clip, _ = tiny_sdxl()
    out = Path(sys.argv[1])
    for i, name in enumerate(sys.argv[2:]):
        write_lora(kohya_lora(model, clip, rank=4, seed=100 + i), out, name)
