"""Region-aware Attend-and-Excite inside real ComfyUI: subjects attended more, finite, bit-identical when off, on the server."""

from __future__ import annotations

import json

import pytest
import torch

from comfy_client import api_template
from regional_helpers import attn2_modules

pytestmark = pytest.mark.host

PROMPT = "a photo of a cat and a dog on a sofa"
SIZE = 128  # pixels; a 16x16 latent, the lowest cross-attention grid is 4x4
HW = (SIZE // 8, SIZE // 8)
REGION_PROMPTS = {"A": "a fluffy cat", "B": "a brown dog"}
SHARPEN = 100.0  # Attend-and-Excite's renormalisation over the prompt's words


def node(comfy, name):
    return comfy.NODE_CLASS_MAPPINGS[name]


def sample(comfy, model, pos, neg, seed=1, steps=2, cfg=5.0, latent=None):
    latent = latent if latent is not None else torch.zeros(1, 4, *HW)
    return comfy.common_ksampler(model, seed, steps, cfg, "euler", "normal", pos, neg, {"samples": latent})[0]["samples"]


@pytest.fixture(scope="module")
def sharp(comfy):
    """The tiny model with its cross-attention queries scaled x20.

    Random weights of std 0.02 give attention scores of std ~0.1: every latent pixel attends
    almost uniformly to all 77 tokens, which no nudge can move (a trained model's attention is
    peaked). Scaling the query projections gives peaked attention with the same architecture.
    """
    from pakati_test_nodes.tiny_sdxl import build_model

    model = build_model(0, 32)
    with torch.no_grad():
        for name, p in model.model.diffusion_model.named_parameters():
            if "attn2.to_q" in name:
                p.mul_(20.0)
    return model


def regions_and_conds(comfy, clip, prompts=REGION_PROMPTS):
    half = SIZE // 2
    layout = json.dumps(
        {
            "version": 1,
            "width": SIZE,
            "height": SIZE,
            "regions": [
                {"id": "a", "name": "A", "shape": "rect", "points": [[0, 0], [half, SIZE]], "prompt": prompts["A"]},
                {"id": "b", "name": "B", "shape": "rect", "points": [[half, 0], [SIZE, SIZE]], "prompt": prompts["B"]},
            ],
        }
    )
    canvas = node(comfy, "PakatiCanvas").execute(width=SIZE, height=SIZE, regions=layout).result[0]
    return node(comfy, "PakatiRegionalConditioning").execute(clip=clip, canvas=canvas, base_prompt=PROMPT, base_negative="").result


def apply_regions(comfy, model, regions):
    return (
        node(comfy, "PakatiApplyRegions")
        .execute(model=model, regions=regions, base_weight=0.3, auto_negative=0.0, start_percent=0.0, end_percent=1.0)
        .result[0]
    )


def excite(
    comfy,
    model,
    clip,
    regions=None,
    words="",
    subjects="",
    steps=2,
    iterations=3,
    scale=20.0,
    threshold=0.99,
    blocks="lowest resolution",
    reduce="max",
    text=PROMPT,
):
    return (
        node(comfy, "PakatiAttendExcite")
        .execute(
            model=model,
            clip=clip,
            text=text,
            words=words,
            subjects=subjects,
            blocks=blocks,
            steps=steps,
            iterations=iterations,
            scale=scale,
            threshold=threshold,
            reduce=reduce,
            regions=regions,
        )
        .result[0]
    )


def excite_wrapper(model):
    return model.wrappers["predict_noise"]["pakati_excite"][0]


def real_tokens(clip, text):
    """(context positions of the prompt's word tokens, their count per encoder)."""
    toks = clip.tokenize(text, return_word_ids=True)
    return sorted({j for chunks in toks.values() for j, t in enumerate(chunks[0]) if t[2] != 0})


class SubjectMeter:
    """Records, with forward hooks and the capture's AttentionRecorder, the sampler's own cross-attention at the
    coarsest grid: per context (the base prompt's or a region's, projected here by the layer's to_k), every word
    token's probability. Gradient passes (Attend-and-Excite's) are left out: their queries require grad."""

    def __init__(self, comfy, model, contexts: list[torch.Tensor | None], words: list[list[int]]):
        from conftest import loaded_pack

        self.recorder_cls = loaded_pack().pakati_core.attention_maps.AttentionRecorder
        self.blocks = attn2_modules(model)
        self.contexts = contexts
        self.recorders = [self.recorder_cls([str(p) for p in w], [[p] for p in w]) for w in words]

    def __enter__(self):
        self.handles, state = [], {}
        coarsest = (HW[0] >> 2) * (HW[1] >> 2)
        for rec in self.recorders:
            rec.begin_run()
        for key, tb in self.blocks.items():

            def pre(module, args, kwargs):
                chunks = kwargs["transformer_options"]["cond_or_uncond"]
                per = args[0].shape[0] // len(chunks)
                state["rows"] = [r for i, c in enumerate(chunks) if c == 0 for r in range(i * per, (i + 1) * per)]
                state["context"] = kwargs.get("context")

            def hq(module, args, out, key=key, attn=tb.attn2):
                if out.requires_grad or out.shape[1] != coarsest:
                    return
                q = out.detach()[state["rows"]]
                for rec, ctx in zip(self.recorders, self.contexts):
                    source = state["context"][state["rows"]] if ctx is None else ctx.to(q.dtype)
                    k = attn.to_k(source).detach().expand(q.shape[0], -1, -1)
                    rec.record(key, q, k, attn.heads, 1, (HW[0] >> 2, HW[1] >> 2), HW)

            self.handles += [tb.register_forward_pre_hook(pre, with_kwargs=True), tb.attn2.to_q.register_forward_hook(hq)]
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()

    def values(self, subjects: list[int], masks: list[torch.Tensor | None]) -> list[float]:
        """Per context: the subject's share of the words' attention (renormalised as Attend-and-Excite does), max inside the mask."""
        out = []
        for rec, subject, mask in zip(self.recorders, subjects, masks):
            maps = rec.maps((HW[0] >> 2, HW[1] >> 2))[:, 0]  # [words, h, w]
            share = torch.softmax(SHARPEN * maps, 0)[subject].reshape(-1)
            out.append(float(share.max() if mask is None else share[mask.reshape(-1) >= 0.5].max()))
        return out


def region_masks(comfy, regions):
    from conftest import loaded_pack

    core = loaded_pack().pakati_core.regional.RegionalAttention(regions)
    return list(core.grid_masks(*HW, HW[0] >> 2, HW[1] >> 2))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_excite_raises_the_weakest_region_subjects_attention_inside_its_mask(comfy, tiny, sharp, seed):
    _, clip, _ = tiny
    regions, pos, neg = regions_and_conds(comfy, clip)
    regional = apply_regions(comfy, sharp, regions)
    excited = excite(comfy, regional, clip, regions=regions, scale=20.0)
    words = [real_tokens(clip, REGION_PROMPTS[n]) for n in ("A", "B")]
    subjects = [w.index(3) for w in words]  # <start> a fluffy cat / a brown dog: the nouns sit at position 3
    contexts = [r.cond for r in regions.regions]
    masks = region_masks(comfy, regions)
    results = {}
    for name, model in (("off", regional), ("on", excited)):
        with SubjectMeter(comfy, model, contexts, words) as meter:
            out = sample(comfy, model, pos, neg, seed=seed, steps=2)  # both sampler steps are excited steps
        assert torch.isfinite(out).all()
        results[name] = meter.values(subjects, masks)
    assert min(results["on"]) > min(results["off"]) + 0.05, results
    # the targets the node built: the default subject is the last noun of each region's prompt
    targets = [s.target for s in excite_wrapper(excited).subjects]
    assert [t.name for t in targets] == ["A: cat", "B: dog"] and [t.positions for t in targets] == [(3,), (3,)]
    history = excite_wrapper(excited).run.history
    assert [step for step, _ in history] == [0, 1] and all(len(v) == 3 for _, v in history)


def test_plain_attend_and_excite_on_base_prompt_words_measured_by_the_capture(comfy, tiny, sharp):
    """No regions: the words of the base prompt over the whole image, measured by PakatiCaptureAttention's recorder."""
    _, clip, _ = tiny
    pos, neg = comfy.CLIPTextEncode().encode(clip, PROMPT)[0], comfy.CLIPTextEncode().encode(clip, "")[0]
    vocabulary = "photo, of, cat, and, dog, on, sofa"  # every word of the prompt but 'a' (the subjects' shares among them)
    gains = []
    for seed in (1, 2):
        worst = {}
        for name, model in (("off", sharp), ("on", excite(comfy, sharp, clip, words="cat, dog", scale=40.0, iterations=4))):
            captured, handle = (
                node(comfy, "PakatiCaptureAttention")
                .execute(model=model, clip=clip, text=PROMPT, words=vocabulary, blocks="all", start_percent=0.0, end_percent=1.0)
                .result
            )
            out = sample(comfy, captured, pos, neg, seed=seed, steps=2)
            assert torch.isfinite(out).all()
            rec = handle.recorder
            assert all(rec._counts[layer] == 2 for layer in rec.layers), (
                "the capture records the sampler's calls only, not the gradient passes"
            )
            coarse = [k for k in rec.layers if rec._grids[k] == min(rec._grids.values(), key=lambda g: g[0] * g[1])]
            maps = torch.stack([rec.layer_map(k) for k in coarse]).mean(0)[:, 0]  # [words, h, w]
            share = torch.softmax(SHARPEN * maps, 0)
            worst[name] = min(float(share[rec.word_index(w)].max()) for w in ("cat", "dog"))
        gains.append(worst["on"] - worst["off"])
    assert min(gains) > 0.02, gains


def test_excite_off_or_already_met_is_bit_identical_to_regional_sampling(comfy, tiny):
    model, clip, _ = tiny
    regions, pos, neg = regions_and_conds(comfy, clip)
    regional = apply_regions(comfy, model, regions)
    want = sample(comfy, regional, pos, neg, steps=3)
    met = excite(comfy, regional, clip, regions=regions, threshold=0.0)  # every subject already at >= 0: passes run, no update
    assert torch.equal(sample(comfy, met, pos, neg, steps=3), want)
    assert [step for step, _ in excite_wrapper(met).run.history] == [0, 1], "the gradient passes ran"
    assert torch.equal(sample(comfy, excite(comfy, regional, clip, regions=regions, scale=0.0), pos, neg, steps=3), want)
    # and the nudge does change the result when it applies
    moved = sample(comfy, excite(comfy, regional, clip, regions=regions, scale=2000.0), pos, neg, steps=3)
    assert torch.isfinite(moved).all() and not torch.equal(moved, want)


def test_excite_composes_with_apply_regions_in_either_order_and_names_subjects(comfy, tiny, sharp):
    _, clip, _ = tiny
    regions, pos, neg = regions_and_conds(comfy, clip)
    subjects = "B: brown\n1: fluffy"
    after = excite(comfy, apply_regions(comfy, sharp, regions), clip, regions=regions, subjects=subjects)
    before = apply_regions(comfy, excite(comfy, sharp, clip, regions=regions, subjects=subjects), regions)
    a, b = sample(comfy, after, pos, neg), sample(comfy, before, pos, neg)
    assert torch.isfinite(a).all() and torch.equal(a, b)
    assert [s.target.name for s in excite_wrapper(after).subjects] == ["A: fluffy", "B: brown"]
    assert [s.target.positions for s in excite_wrapper(after).subjects] == [(2,), (2,)]


def test_excite_with_gradients_under_inference_mode(comfy, tiny):
    """As ComfyUI's executor runs nodes: model built, patched and sampled inside torch.inference_mode (weights are inference tensors)."""
    from pakati_test_nodes.tiny_sdxl import build_model

    _, clip, _ = tiny
    with torch.inference_mode():
        model = build_model(0, 32)
        assert next(model.model.diffusion_model.parameters()).is_inference()
        regions, pos, neg = regions_and_conds(comfy, clip)
        regional = apply_regions(comfy, model, regions)
        plain = sample(comfy, regional, pos, neg)
        excited = excite(comfy, regional, clip, regions=regions, words="sofa", blocks="all", scale=2000.0, iterations=2)
        out = sample(comfy, excited, pos, neg)
    assert torch.isfinite(out).all() and not torch.equal(out, plain)
    assert all(len(v) == 2 for _, v in excite_wrapper(excited).run.history)


def test_excite_errors_name_node_and_input(comfy, tiny):
    model, clip, _ = tiny
    regions, pos, neg = regions_and_conds(comfy, clip)
    with pytest.raises(ValueError, match="PakatiAttendExcite: input 'words': nothing to excite"):
        excite(comfy, model, clip)
    with pytest.raises(ValueError, match="PakatiAttendExcite: input 'words':.*does not occur in the prompt"):
        excite(comfy, model, clip, words="giraffe")
    with pytest.raises(ValueError, match=r"PakatiAttendExcite: input 'subjects': no region 'c' \(regions: 'A', 'B'\)"):
        excite(comfy, model, clip, regions=regions, subjects="C: cat")
    with pytest.raises(ValueError, match="PakatiAttendExcite: input 'subjects':.*does not occur"):
        excite(comfy, model, clip, regions=regions, subjects="A: dog")
    assert "input 'subjects'" in node(comfy, "PakatiAttendExcite").validate_inputs(subjects="A cat")
    masked = (
        node(comfy, "PakatiRegionFromConditioning")
        .execute(conditioning=comfy.CLIPTextEncode().encode(clip, "a red apple")[0], mask=torch.ones(1, SIZE, SIZE), strength=1.0)
        .result[0]
    )
    with pytest.raises(
        ValueError, match=r"PakatiAttendExcite: input 'subjects': region 'mask region 1' .*CONDITIONING.*'mask region 1: word \| "
    ):
        excite(comfy, model, clip, regions=masked)
    ok = excite(comfy, model, clip, regions=masked, subjects="mask region 1: apple | a red apple")
    assert [s.target.positions for s in excite_wrapper(ok).subjects] == [(3,)]


def test_excite_runs_in_a_graph_through_the_server(comfy_server):
    """The regional template's graph with Pakati Attend and Excite between Apply Regions and the sampler, on /prompt
    (the server executes under torch.inference_mode: the gradient passes must still work)."""
    prompt = api_template("attend_excite_regions")
    for n in prompt.values():
        if n["class_type"] == "EmptyLatentImage":
            n["inputs"].update(width=256, height=256)
        if n["class_type"] == "KSampler":
            n["inputs"]["steps"] = 3
        if n["class_type"] == "PakatiAttendExcite":
            n["inputs"].update(steps=2, iterations=2, scale=1000.0, threshold=0.99)
    excite_id = next(k for k, v in prompt.items() if v["class_type"] == "PakatiAttendExcite")
    sampler = next(v for v in prompt.values() if v["class_type"] == "KSampler")
    save = next(k for k, v in prompt.items() if v["class_type"] == "PakatiSaveImage")
    entry = comfy_server.run(prompt)
    assert entry["status"]["status_str"] == "success"
    (excited,) = comfy_server.images(entry, save)
    sampler["inputs"]["model"] = prompt[excite_id]["inputs"]["model"]  # the same graph without the excite node
    del prompt[excite_id]
    (plain,) = comfy_server.images(comfy_server.run(prompt), save)
    assert excited.shape == plain.shape == (256, 256, 3)
    assert (excited != plain).any(), "the nudged latent changed the image"


def test_node_has_category_and_tooltips(comfy):
    info = comfy.NODE_CLASS_MAPPINGS["PakatiAttendExcite"].GET_NODE_INFO_V1()
    assert info["category"] == "Pakati/attention"
    for section in ("required", "optional"):
        for input_name, spec in info["input"].get(section, {}).items():
            assert spec[1].get("tooltip"), f"PakatiAttendExcite.{input_name} has no tooltip"
