"""The same regional attention in diffusers' StableDiffusionXLPipeline (tiny components from configs)."""

from __future__ import annotations

import json
import string

import numpy as np
import pytest
import torch

from harness import need_module

diffusers = need_module("diffusers", "diffusers is optional for users, a test dependency: pip install -e '.[test]'")
transformers = need_module("transformers", "a test dependency: pip install -e '.[test]'")

from pakati_core import Canvas  # noqa: E402
from pakati_core.diffusers import RegionalSDXL  # noqa: E402
from pakati_core.regional import RegionalOptions, RegionPrompt, RegionSet  # noqa: E402

SIZE = 64  # image pixels; the tiny VAE downsamples by 2, so the latent is 32x32


def tiny_tokenizer(tmp_path):
    """A real CLIPTokenizer over a character-level vocabulary written here (no hub download)."""
    chars = list(string.ascii_lowercase)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in chars:
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n")
    return transformers.CLIPTokenizer(
        str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"), pad_token="<|endoftext|>", model_max_length=77
    )


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=80,
        cross_attention_dim=64,
        norm_num_groups=1,
    )
    scheduler = diffusers.EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, steps_offset=1, beta_schedule="scaled_linear", timestep_spacing="leading"
    )
    vae = diffusers.AutoencoderKL(
        block_out_channels=[32, 64],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
        latent_channels=4,
        sample_size=32,
        norm_num_groups=1,
    )
    cfg = dict(
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
        hidden_size=32,
        intermediate_size=37,
        layer_norm_eps=1e-05,
        num_attention_heads=4,
        num_hidden_layers=3,
        vocab_size=60,
        hidden_act="gelu",
        projection_dim=32,
    )
    te1 = transformers.CLIPTextModel(transformers.CLIPTextConfig(**cfg))
    te2 = transformers.CLIPTextModelWithProjection(transformers.CLIPTextConfig(**cfg))
    tok = tiny_tokenizer(tmp_path_factory.mktemp("tok"))
    return diffusers.StableDiffusionXLPipeline(
        vae=vae, text_encoder=te1, text_encoder_2=te2, tokenizer=tok, tokenizer_2=tok, unet=unet, scheduler=scheduler
    )


def halves(**b):
    return Canvas.from_json(
        json.dumps(
            {
                "version": 1,
                "width": SIZE,
                "height": SIZE,
                "regions": [
                    {"id": "a", "shape": "rect", "points": [[0, 0], [32, 64]], "prompt": "a red apple"},
                    {"id": "b", "shape": "rect", "points": [[32, 0], [64, 64]], "prompt": "a blue sea", **b},
                ],
            }
        )
    )


def run(pipe, canvas, prompt="a photo", seed=0, **kw):
    return RegionalSDXL(pipe, RegionalOptions(base_weight=kw.pop("base_weight", 0.3)))(
        canvas, prompt, num_inference_steps=2, generator=torch.Generator().manual_seed(seed), output_type="np", **kw
    ).images


def test_renders_a_canvas_deterministically(pipe):
    a, b = run(pipe, halves()), run(pipe, halves())
    assert a.shape == (1, SIZE, SIZE, 3) and np.isfinite(a).all()
    assert np.array_equal(a, b)
    # the processors are removed again after the call
    assert not any(type(p).__name__ == "PakatiAttnProcessor" for p in pipe.unet.attn_processors.values())


def test_identity_full_canvas_region_with_the_base_prompt(pipe):
    full = Canvas.from_json(
        json.dumps(
            {
                "version": 1,
                "width": SIZE,
                "height": SIZE,
                "regions": [{"id": "all", "shape": "rect", "points": [[0, 0], [SIZE, SIZE]], "prompt": "a photo"}],
            }
        )
    )
    ours = run(pipe, full)
    plain = pipe(
        "a photo", num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="np", width=SIZE, height=SIZE
    ).images
    assert np.abs(ours - plain).max() <= 1e-3


def test_locality_in_the_first_cross_attention(pipe):
    attn = next(m for n, m in pipe.unet.named_modules() if n.endswith("attn2"))
    outputs = []
    hook = attn.register_forward_hook(lambda mod, args, kwargs, out: outputs.append(out.detach().clone()), with_kwargs=True)
    try:
        run(pipe, halves(prompt="a blue sea"))
        first = outputs[0]
        outputs.clear()
        run(pipe, halves(prompt="volcano at night"))
        second = outputs[0]
    finally:
        hook.remove()
    cond1, cond2 = first[1].view(16, 16, -1), second[1].view(16, 16, -1)  # [uncond, cond]; 32x32 latent, grid 16x16
    assert (cond2[:, :8] - cond1[:, :8]).norm() / cond1[:, :8].norm() <= 1e-4
    assert (cond2[:, 8:] - cond1[:, 8:]).norm() / cond1[:, 8:].norm() > 1e-3
    assert torch.allclose(first[0], second[0]), "unconditional rows untouched"


def test_embeddings_api_and_errors(pipe):
    g = torch.Generator().manual_seed(3)
    mask = np.zeros((SIZE, SIZE), np.float32)
    mask[:, :32] = 1
    regions = RegionSet((RegionPrompt(name="left", cond=torch.randn(1, 77, 64, generator=g), mask=mask),))
    pos, neg = torch.randn(1, 77, 64, generator=g), torch.zeros(1, 77, 64)
    pooled = torch.randn(1, 32, generator=g)
    out = (
        RegionalSDXL(pipe)
        .generate(
            regions,
            pos,
            pooled,
            neg,
            torch.zeros(1, 32),
            width=SIZE,
            height=SIZE,
            num_inference_steps=2,
            output_type="np",
            generator=torch.Generator().manual_seed(0),
        )
        .images
    )
    assert np.isfinite(out).all()
    with pytest.raises(ValueError, match="mask: region 'left' is defined on a 64x64 mask"):
        RegionalSDXL(pipe).generate(regions, pos, pooled, neg, torch.zeros(1, 32), width=SIZE, height=32, num_inference_steps=1)
    with pytest.raises(ValueError, match=r"region 'b' \(regions\[1\]\) has an empty prompt"):
        run(pipe, halves(prompt=" "))


# -- the gathered processor equals the dense reference, on its own and around another processor ------


def random_regions(seed, n=4, negatives=False):
    rng = np.random.default_rng(seed)
    g = torch.Generator().manual_seed(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    regions = []
    for i in range(n):
        cy, cx, r = rng.uniform(0, SIZE, 2).tolist() + [rng.uniform(10, 40)]
        m = np.clip((r - np.hypot(yy - cy, xx - cx)) / 8.0, 0.0, 1.0).astype(np.float32)  # soft edge
        if i == n - 1:
            m = np.zeros_like(m)
            m[:2, :2] = 1  # nearly empty: nothing at the coarse layers
        neg = torch.randn(1, 77, 64, generator=g) if negatives and i % 2 else None
        regions.append(
            RegionPrompt(
                name=f"r{i}", cond=torch.randn(1, 77, 64, generator=g), mask=m, negative=neg, strength=float(rng.uniform(0.5, 1.5))
            )
        )
    return RegionSet(tuple(regions))


@pytest.mark.parametrize(
    "inner_name,negatives", [("AttnProcessor2_0", False), ("SlicedAttnProcessor", False), ("SlicedAttnProcessor", True)]
)
def test_processor_equals_the_dense_path(pipe, inner_name, negatives):
    from diffusers.models import attention_processor as ap

    from pakati_core.diffusers.regional import PakatiAttnProcessor, _CallState
    from pakati_core.regional import RegionalAttention, grid_shape
    from pakati_core.regional.projections import ProjectionCache

    inner = ap.SlicedAttnProcessor(3) if inner_name == "SlicedAttnProcessor" else ap.AttnProcessor2_0()
    core = RegionalAttention(
        random_regions(1, negatives=negatives), RegionalOptions(base_weight=0.3, auto_negative=0.5 if negatives else 0.0)
    )
    latent = (SIZE // 2, SIZE // 2)
    proc = PakatiAttnProcessor(core, _CallState(latent, cfg=True), inner, ProjectionCache())
    assert proc.own == (inner_name == "AttnProcessor2_0")
    g = torch.Generator().manual_seed(2)
    layers = [m for n, m in pipe.unet.named_modules() if n.endswith("attn2")]
    for attn, tokens in [(layers[0], 16 * 16), (layers[-1], 16 * 16)]:
        h = torch.randn(2, tokens, attn.to_q.in_features, generator=g)
        text = torch.randn(2, 77, 64, generator=g)
        with torch.no_grad():
            ours = proc(attn, h, text)
            q, extra = attn.to_q(h), core.extra.to(h.dtype)
            k = torch.cat([attn.to_k(text), attn.to_k(extra).expand(2, -1, -1)], 1)
            v = torch.cat([attn.to_v(text), attn.to_v(extra).expand(2, -1, -1)], 1)
            grid = grid_shape(latent, tokens)
            dense = torch.stack(
                [
                    core.attend(q[1:], k[1:], v[1:], attn.heads, "cond", 77, latent, grid)[0],
                    core.attend(q[:1], k[:1], v[:1], attn.heads, "uncond", 77, latent, grid)[0]
                    if core.regionalises_uncond
                    else torch.nn.functional.scaled_dot_product_attention(
                        *(
                            t[:1, : 77 if i else None].view(1, -1, attn.heads, t.shape[-1] // attn.heads).transpose(1, 2)
                            for i, t in enumerate((q, k, v))
                        )
                    )
                    .transpose(1, 2)
                    .reshape(-1, q.shape[-1]),
                ]
            )[[1, 0]]
            dense = attn.to_out[0](dense)
        assert torch.allclose(ours, dense, atol=2e-5, rtol=1e-4), (ours - dense).abs().max()


# -- composes with diffusers' own IP-Adapter attention processor -------------------------------------


def ip_adapter_state_dict(unet, seed=0):
    """Random IP-Adapter weights in the layout diffusers' own loader reads (image_proj + ip_adapter)."""
    from diffusers.models.attention_processor import IPAdapterAttnProcessor
    from diffusers.models.embeddings import ImageProjection

    torch.manual_seed(seed)
    cross, key_id, ip = unet.config.cross_attention_dim, 1, {}
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        if name.startswith("mid_block"):
            hidden = unet.config.block_out_channels[-1]
        elif name.startswith("up_blocks"):
            hidden = list(reversed(unet.config.block_out_channels))[int(name[len("up_blocks.")])]
        else:
            hidden = unet.config.block_out_channels[int(name[len("down_blocks.")])]
        sd = IPAdapterAttnProcessor(hidden_size=hidden, cross_attention_dim=cross, scale=1.0).state_dict()
        ip[f"{key_id}.to_k_ip.weight"], ip[f"{key_id}.to_v_ip.weight"] = sd["to_k_ip.0.weight"], sd["to_v_ip.0.weight"]
        key_id += 2
    proj = ImageProjection(cross_attention_dim=cross, image_embed_dim=cross, num_image_text_embeds=4).state_dict()
    image_proj = {
        "proj.weight": proj["image_embeds.weight"],
        "proj.bias": proj["image_embeds.bias"],
        "norm.weight": proj["norm.weight"],
        "norm.bias": proj["norm.bias"],
    }
    return {"image_proj": image_proj, "ip_adapter": ip}


@pytest.fixture(scope="module")
def ip_pipe(pipe):
    ipp = diffusers.StableDiffusionXLPipeline(**pipe.components)
    ipp.unet = type(pipe.unet).from_config(pipe.unet.config)
    ipp.unet.load_state_dict(pipe.unet.state_dict())
    ipp.unet._load_ip_adapter_weights([ip_adapter_state_dict(ipp.unet)])
    return ipp


def test_wraps_diffusers_ip_adapter_processor_instead_of_dropping_it(pipe, ip_pipe):
    from diffusers.models.attention_processor import IPAdapterAttnProcessor2_0

    attn2 = {n: p for n, p in ip_pipe.unet.attn_processors.items() if ".attn2." in n}
    assert all(isinstance(p, IPAdapterAttnProcessor2_0) for p in attn2.values())
    embeds = [torch.randn(2, 1, 64, generator=torch.Generator().manual_seed(6))]  # [negative, positive] image embeddings
    calls = []
    hooks = [p.to_k_ip[0].register_forward_hook(lambda *a: calls.append(1)) for p in attn2.values()]
    try:
        with_ip = run(ip_pipe, halves(), ip_adapter_image_embeds=embeds)
    finally:
        for h in hooks:
            h.remove()
    assert calls, "IP-Adapter's own processor ran inside Pakati's"
    assert {n: p for n, p in ip_pipe.unet.attn_processors.items() if ".attn2." in n} == attn2, "and is back afterwards"
    without = run(pipe, halves())
    assert np.isfinite(with_ip).all() and np.abs(with_ip - without).max() > 1e-3, "the image prompt changes the result"
    ip_pipe.set_ip_adapter_scale(0.0)
    try:
        zero = run(ip_pipe, halves(), ip_adapter_image_embeds=embeds)
    finally:
        ip_pipe.set_ip_adapter_scale(1.0)
    assert np.abs(zero - without).max() <= 1e-4, "at scale 0 the result is Pakati's alone: regions are kept, not dropped"


# -- attention capture and Attend-and-Excite in the diffusers backend --------------------------------


def attn2_layers(pipe):
    return {
        n[: -len(".processor")]: m
        for n, m in ((name, pipe.unet.get_submodule(name[: -len(".processor")])) for name in pipe.unet.attn_processors)
        if ".attn2" in n
    }


class InputHooks:
    """Each attn2 call's inputs (hidden states, text), from forward pre-hooks: the maps are recomputed from them here."""

    def __init__(self, pipe):
        self.layers = attn2_layers(pipe)
        self.calls = {name: [] for name in self.layers}

    def __enter__(self):
        def make(name):
            def pre(module, args, kwargs):
                h = args[0] if args else kwargs["hidden_states"]
                text = kwargs.get("encoder_hidden_states", args[1] if len(args) > 1 else None)
                if not h.requires_grad:  # the sampler's own calls, not Attend-and-Excite's gradient passes
                    self.calls[name].append((h.detach().clone(), text.detach().clone()))

            return pre

        self.handles = [m.register_forward_pre_hook(make(n), with_kwargs=True) for n, m in self.layers.items()]
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()

    def probabilities(self, name, contexts=None):
        """Per call, head-averaged softmax(q k^T / sqrt(d)) of the conditional rows, float64: [calls] of [B, Q, T]."""
        attn = self.layers[name]
        out = []
        for h, text in self.calls[name]:
            rows = slice(h.shape[0] // 2, h.shape[0])
            with torch.no_grad():
                q = torch.nn.functional.linear(h[rows].double(), attn.to_q.weight.double())
                ctx = text[rows] if contexts is None else contexts.expand(q.shape[0], -1, -1)
                k = torch.nn.functional.linear(ctx.double(), attn.to_k.weight.double())
            b, n, c = q.shape
            d = c // attn.heads
            qh, kh = q.view(b, n, attn.heads, d).transpose(1, 2), k.view(b, -1, attn.heads, d).transpose(1, 2)
            out.append(torch.softmax(qh @ kh.transpose(-1, -2) / d**0.5, -1).mean(1))
        return out


@pytest.mark.parametrize("width,height,images", [(SIZE, SIZE, 1), (56, 40, 2)])
def test_captured_map_equals_softmax_of_hooked_inputs_at_every_layer(pipe, width, height, images):
    from pakati_core.attention_maps import AttentionRecorder
    from pakati_core.diffusers import capture_attention, word_positions_in

    prompt = "a red apple on a table"
    positions = [word_positions_in(pipe, prompt, w) for w in ("apple", "table")]
    rec = AttentionRecorder(["apple", "table"], positions)
    latent = (height // 2, width // 2)
    kw = dict(
        num_inference_steps=2,
        generator=torch.Generator().manual_seed(0),
        output_type="np",
        width=width,
        height=height,
        num_images_per_prompt=images,
    )
    with InputHooks(pipe) as hooks, capture_attention(pipe.unet, rec, latent):
        captured = pipe(prompt, **kw).images
    assert sorted(rec.layers) == sorted(name + ".processor" for name in hooks.layers)
    for name in hooks.layers:
        probs = hooks.probabilities(name)
        for w, pos in enumerate(positions):
            want = torch.stack([p[..., pos].sum(-1) for p in probs]).mean(0)  # [B, Q]
            got = rec.layer_map(name + ".processor")[w].reshape(images, -1).double()
            assert torch.allclose(got, want, atol=1e-5, rtol=0), (name, w, (got - want).abs().max())
    assert rec.maps().shape == (2, images, *latent)
    plain = pipe(prompt, **(kw | {"generator": torch.Generator().manual_seed(0)})).images
    assert np.array_equal(captured, plain), "the capture leaves the images bit-identical"
    assert not any(type(p).__name__ == "CaptureProcessor" for p in pipe.unet.attn_processors.values())


@pytest.fixture(scope="module")
def sharp_pipe(pipe):
    """The tiny pipeline with its cross-attention queries scaled x10: random weights attend almost uniformly, which
    no nudge can move (a trained model's attention is peaked); scaled queries give peaked attention."""
    sp = diffusers.StableDiffusionXLPipeline(**pipe.components)
    sp.unet = type(pipe.unet).from_config(pipe.unet.config)
    sp.unet.load_state_dict(pipe.unet.state_dict())
    with torch.no_grad():
        for name, p in sp.unet.named_parameters():
            if "attn2.to_q" in name:
                p.mul_(10.0)
    return sp


def sharpened_share(probs, text_positions, subject_positions, coverage):
    """Attend-and-Excite's measure recomputed from hooked inputs: per call and image, the subject's share of the
    words' attention (softmax(100 p) over the word tokens), max over the cells at least half covered; mean over calls."""
    cols = [text_positions.index(p) for p in subject_positions]
    vals = []
    for p in probs:  # [B, Q, T]
        share = torch.softmax(100.0 * p[..., text_positions], -1)[..., cols].sum(-1)  # [B, Q]
        vals.append(share[:, coverage >= 0.5].amax(1) if coverage is not None else share.amax(1))
    return torch.stack(vals).mean(0)  # [B]


def test_regional_excite_raises_each_region_subjects_attention_inside_its_mask(sharp_pipe):
    from pakati_core.attention_maps import ExciteSettings
    from pakati_core.diffusers import cross_attention_names
    from pakati_core.regional import RegionalAttention

    settings = ExciteSettings(scale=200.0, steps=2, iterations=3, threshold=0.99)
    pipe = sharp_pipe
    canvas = halves()
    lowest = [n[: -len(".processor")] for n in cross_attention_names(pipe.unet, "lowest resolution")]
    worst = {}
    for seed in (0, 1, 2):
        for name, excite in (("off", None), ("on", settings)):
            rsdxl = RegionalSDXL(pipe)
            regions = rsdxl.regions_from_canvas(canvas)
            targets = rsdxl.subjects(canvas)
            with InputHooks(pipe) as hooks:
                out = rsdxl(
                    canvas, "a photo", excite=excite, num_inference_steps=2, generator=torch.Generator().manual_seed(seed), output_type="np"
                ).images
            assert np.isfinite(out).all()
            masks = RegionalAttention(regions).grid_masks(SIZE // 2, SIZE // 2, SIZE // 4, SIZE // 4)
            vals = []
            for t in targets:
                per_layer = [
                    sharpened_share(
                        hooks.probabilities(layer, regions.regions[t.region].cond),
                        list(t.text_positions),
                        list(t.positions),
                        masks[t.region],
                    )
                    for layer in lowest
                ]
                vals.append(float(torch.stack(per_layer).mean()))
            worst.setdefault(seed, {})[name] = min(vals)
        assert [t.name for t in targets] == ["a: apple", "b: sea"]
        assert [step for step, _ in rsdxl.exciter.history] == [0, 1]
    assert all(w["on"] > w["off"] + 0.02 for w in worst.values()), worst


def test_plain_attend_and_excite_measured_by_the_capture_and_bit_identical_when_met(sharp_pipe):
    from pakati_core.attention_maps import AttentionRecorder, ExciteSettings
    from pakati_core.diffusers import attend_and_excite, capture_attention, text_positions_in, word_positions_in

    pipe = sharp_pipe
    prompt = "a cat and a dog"
    words = text_positions_in(pipe, prompt)
    rec = AttentionRecorder([str(p) for p in words], [[p] for p in words])  # every word token on its own: the renormalisation set
    subjects = [[words.index(p) for p in word_positions_in(pipe, prompt, w)] for w in ("cat", "dog")]
    kw = dict(num_inference_steps=2, output_type="np", width=SIZE, height=SIZE)
    worst = {}
    for seed in (0, 1):
        for name, settings in (
            ("off", ExciteSettings(scale=200.0, steps=2, threshold=0.0)),
            ("on", ExciteSettings(scale=200.0, steps=2, threshold=0.99)),
        ):
            with capture_attention(pipe.unet, rec, (SIZE // 2, SIZE // 2), blocks="lowest resolution"):
                out = attend_and_excite(pipe, prompt, ["cat", "dog"], settings, generator=torch.Generator().manual_seed(seed), **kw).images
            assert np.isfinite(out).all()
            share = torch.softmax(100.0 * rec.maps()[:, 0], 0)  # [words, h, w]
            worst.setdefault(seed, {})[name] = min(float(share[cols].sum(0).max()) for cols in subjects)
            if name == "off":  # threshold 0: the gradient passes ran, nothing moved: the pipeline's own result
                plain = pipe(prompt, generator=torch.Generator().manual_seed(seed), **kw).images
                assert np.array_equal(out, plain)
    assert all(w["on"] > w["off"] + 0.02 for w in worst.values()), worst
    assert not any(type(p).__name__ in ("ExciteProcessor", "CaptureProcessor") for p in pipe.unet.attn_processors.values())


def test_regional_excite_off_is_bit_identical_and_errors_name_the_field(pipe):
    from pakati_core.attention_maps import ExciteSettings
    from pakati_core.diffusers import attend_and_excite

    want = run(pipe, halves())
    met = RegionalSDXL(pipe, RegionalOptions(base_weight=0.3))(
        halves(),
        "a photo",
        excite=ExciteSettings(steps=2, threshold=0.0),
        num_inference_steps=2,
        generator=torch.Generator().manual_seed(0),
        output_type="np",
    ).images
    assert np.array_equal(met, want)
    with pytest.raises(ValueError, match="subjects: the word does not occur"):
        RegionalSDXL(pipe)(halves(), "a photo", excite=ExciteSettings(), subjects={"a": "pear"}, num_inference_steps=1)
    with pytest.raises(ValueError, match="pipe_kwargs: .*leave out latents"):
        attend_and_excite(pipe, "a cat", ["cat"], latents=torch.zeros(1, 4, 32, 32), num_inference_steps=1)
    with pytest.raises(ValueError, match="words: give at least one word"):
        attend_and_excite(pipe, "a cat", [], num_inference_steps=1)
