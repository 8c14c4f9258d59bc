"""Offline planner: how often its layouts keep the issue-13 rules on T2I-CompBench training prompts.

Run: python bench/bench_planner.py [--data DIR] [--misses N]

The expected objects, attributes and relations are read from each prompt by this script's own
small reference reader (regular expressions and a short colour/material/texture list written
independently of the planner's parser), so a prompt the planner misreads counts as a miss.
A prompt is kept when every reference check holds on the planned layout:
  - every reference noun has a region whose prompt contains it (singular or plural);
  - every reference attribute word sits in the prompt of the region holding its noun and in no
    region whose noun does not carry that word;
  - every "two cats" has at least that many regions naming the noun (at most 8);
  - every reference relation holds on the two regions' boxes (geometry from
    pakati_core.orchestration.rules: left/right 5% of width and |dx| > |dy|, above/below 2%
    of height, near = gap <= 15% of the shorter side and IoU <= 0.5; front/behind by bottom
    edge and z-order).
Timing: per-prompt planning time, printed with its ratio to parsing the resulting canvas with
Canvas.from_dict (Region JSON v1 validation), measured in the same run.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

import inflect

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from pakati_core.canvas import Canvas  # noqa: E402
from pakati_core.orchestration import plan  # noqa: E402
from pakati_core.orchestration.rules import has_word, relation_holds  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "t2i-compbench"
if not DATA.is_dir():
    DATA = Path("/work/shared/data/t2i-compbench")

# -- the reference reader (independent of pakati_core.phrases, the planner's reader) --------------------
REF_ATTRS = set(
    """red green blue yellow black white brown pink purple orange gray grey silver gold golden beige
wooden metallic plastic rubber leather glass fabric marble ceramic fluffy furry smooth rough soft shiny sleek bumpy
prickly spiky jagged striped round square rectangular circular triangular oval""".split()
)
STOP = set(
    """a an the and or but with on in of at by to for from into onto over under near next is are was were has have
had sat stood lay hung rests rested sits stands lies hangs floated while as its their his her this that these those
down up off together during across above below behind through around against
swam shone float floats fall falls lie sit hold holds add adds bounces clink clinks keep keeps made cast casts
complement complements slides glistens blazes shines grows grow covers stretches reflects takes flies looks drove
flew fell rode ran it""".split()
)
REL = [
    ("on the left of", "left_of"),
    ("on the right of", "right_of"),
    ("on the top of", "above"),
    ("on top of", "above"),
    ("on the bottom of", "below"),
    ("next to", "near"),
    ("near", "near"),
    ("beside", "near"),
    ("on side of", "near"),
    ("on the side of", "near"),
    ("above", "above"),
    ("below", "below"),
    ("under", "below"),
    ("in front of", "in_front_of"),
    ("behind", "behind"),
    ("hidden by", "behind"),
]
_inflect = inflect.engine()
WORD = re.compile(r"[a-z]+(?:-[a-z]+)*|[,.;:!?]")


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def np_head(tokens: list[str], i: int) -> str | None:
    """The last word of the noun phrase starting at token ``i`` (determiners skipped)."""
    while i < len(tokens) and tokens[i] in ("a", "an", "the"):
        i += 1
    head = None
    while (
        i < len(tokens)
        and tokens[i].isalpha()
        and tokens[i] not in STOP
        and not tokens[i].endswith("ly")
        and not (head and tokens[i].endswith(("ed", "ing")))
    ):
        head = tokens[i]
        i += 1
        if (
            i < len(tokens)
            and tokens[i] == ","
            and i + 2 < len(tokens)
            and tokens[i + 1] not in STOP
            and tokens[i + 2] not in STOP
            and tokens[i + 2].isalpha()
            and tokens[i + 1] not in NUMBER_WORDS
            and tokens[i + 1] != "one"
        ):
            i += 1
    return head


NUMBER_WORDS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8}


def counts(prompt: str) -> list[tuple[str, int]]:
    """(noun, n) for every 'two cats' in the prompt (n capped at the planner's 8 regions per noun)."""
    t = words(prompt)
    out = []
    for i, w in enumerate(t[:-1]):
        if w in NUMBER_WORDS:
            head = np_head(t, i + 1)
            if head:
                out.append((head, min(NUMBER_WORDS[w], 8)))
    return out


def reference(prompt: str) -> tuple[set[str], list[tuple[str, str]], list[tuple[str, str, str]]]:
    t = words(prompt)
    nouns: set[str] = set()
    attrs: list[tuple[str, str]] = []
    rels: list[tuple[str, str, str]] = []
    for i, w in enumerate(t):
        if w in REF_ATTRS:
            j = i + 1
            while (
                j < len(t)
                and (t[j] in REF_ATTRS or t[j] in (",", "and"))
                and not (t[j] == "and" and j + 1 < len(t) and t[j + 1] not in REF_ATTRS)
            ):
                j += 1
            head = np_head(t, j)
            if head and head not in REF_ATTRS:
                attrs.append((w, head))
                nouns.add(head)
    text = " ".join(t)
    for phrase, rel in REL:
        for m in re.finditer(rf"(?<![a-z]){phrase}(?![a-z])", text):
            before = text[: m.start()].split()
            k = len(before) - 1
            while k >= 0 and (before[k] in STOP or before[k].endswith("ed")) and before[k] not in (",",):
                k -= 1
            after = text[m.end() :].split()
            obj = np_head(after, 0)
            if k >= 0 and before[k].isalpha() and obj:
                subj = before[k]
                rels.append((subj, rel, obj))
                nouns.update((subj, obj))
    return nouns, attrs, rels


def region_for(p, noun: str) -> list[dict]:
    return [
        r
        for r in p.canvas["regions"]
        if has_word(r["prompt"], noun) or has_word(r["prompt"], noun.rstrip("s")) or has_word(r["prompt"], noun + "s")
    ]


def box(r: dict) -> tuple[float, float, float, float]:
    (x0, y0), (x1, y1) = r["points"][0], r["points"][-1]
    return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)


def keep(prompt: str, p) -> list[str]:
    """The reference checks the plan fails (empty when the prompt is kept)."""
    nouns, attrs, rels = reference(prompt)
    misses = []
    for n in sorted(nouns):
        if not region_for(p, n):
            misses.append(f"no region names '{n}'")
    for a, n in attrs:
        own = [r for r in region_for(p, n) if has_word(r["prompt"], a)]
        if region_for(p, n) and not own:
            misses.append(f"'{a}' is not in the region of '{n}'")
        owners = {n2 for a2, n2 in attrs if a2 == a}
        for r in p.canvas["regions"]:
            if has_word(r["prompt"], a) and not any(has_word(r["prompt"], o) or has_word(r["prompt"], o.rstrip("s")) for o in owners):
                misses.append(f"'{a}' leaks into region {r['id']} ({r['prompt']!r})")
    for noun, n in counts(prompt):
        stem = _inflect.singular_noun(noun) or noun
        have = [r for r in p.canvas["regions"] if has_word(r["prompt"], noun) or has_word(r["prompt"], stem)]
        if len(have) < n:
            misses.append(f"{n} {noun} asked, {len(have)} regions drawn")
    z = {r["id"]: i for i, r in enumerate(p.canvas["regions"])}
    for s, rel, o in rels:
        ra = [r for r in region_for(p, s) if r["id"] != "background"]
        rb = [r for r in region_for(p, o) if r["id"] != "background"]
        if not ra or not rb:
            continue  # counted above as a missing noun
        ok = any(
            relation_holds(rel, box(a), box(b), p.width, p.height, z[a["id"]], z[b["id"]]) for a in ra for b in rb if a["id"] != b["id"]
        )
        if not ok:
            misses.append(f"{s} {rel} {o} does not hold")
    return misses


def run(name: str, prompts: list[str], show: int) -> tuple[float, list[float], list[float]]:
    kept, times, base = 0, [], []
    misses = []
    for prompt in prompts:
        t0 = time.perf_counter()
        p = plan(prompt)
        times.append(time.perf_counter() - t0)
        t1 = time.perf_counter()
        Canvas.from_dict(p.canvas)
        base.append(time.perf_counter() - t1)
        bad = keep(prompt, p)
        if bad:
            misses.append((prompt, bad))
        else:
            kept += 1
    rate = kept / max(len(prompts), 1)
    print(
        f"{name:28s} {kept:4d}/{len(prompts):4d} kept = {100 * rate:5.1f}%   plan mean {1000 * statistics.mean(times):5.2f} ms, "
        f"max {1000 * max(times):5.2f} ms ({statistics.mean(times) / statistics.mean(base):4.1f}x Canvas.from_dict)"
    )
    for prompt, bad in misses[:show]:
        print(f"    miss: {prompt!r}: {'; '.join(bad[:3])}")
    return rate, times, base


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--misses", type=int, default=8, help="misses to print per file")
    args = ap.parse_args()
    plan("warm up the lexicon and inflect")
    sets = [
        ("spatial_train.txt", "spatial (2D)", 0.97),
        ("color_train.txt", "colour", 0.97),
        ("complex_train.txt", "free sentences (complex)", 0.90),
        ("complex_train_spatial.txt", "free sentences (spatial)", 0.90),
        ("3d_spatial_train.txt", "3D spatial (extra)", None),
        ("texture_train.txt", "texture (extra)", None),
        ("shape_train.txt", "shape (extra)", None),
        ("numeracy_train.txt", "numeracy (extra)", None),
    ]
    all_times = []
    failed = []
    for fname, name, target in sets:
        path = args.data / fname
        if not path.is_file():
            print(f"{name}: {path} not found")
            continue
        prompts = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
        rate, times, _ = run(name, prompts, args.misses)
        all_times += times
        if target is not None and rate < target:
            failed.append(f"{name} {100 * rate:.1f}% < {100 * target:.0f}%")
    all_times.sort()
    print(
        f"all prompts: median {1000 * all_times[len(all_times) // 2]:.2f} ms, p99 {1000 * all_times[int(len(all_times) * 0.99)]:.2f} ms, "
        f"max {1000 * all_times[-1]:.2f} ms per prompt (budget 50 ms)"
    )
    print("targets met" if not failed else "below target: " + ", ".join(failed))


if __name__ == "__main__":
    main()
