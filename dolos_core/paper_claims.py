"""The claims the study checks, declared as records (``claims.Claim``): the paper's first, then
ours. Each claim says what it compares (its parts, as cells: an experiment on a test set), whose
quality it is about (subjects) and what it measures them against (references), and the
contrast it needs the data to have (``needs``); ``dolos_core/claims.py`` decides every one by the
same rules. Registered with ``claims.register_claims``, the way a method registers its card: a
method's or a stage's own file adds its claims the same way (docs/development.md).
"""

from __future__ import annotations

from .claims import FAKE_ALL, PRIOR, TEST, WEAK_RATIO, Cell, Claim, Context, DropGap, Part, register_claims
from .experiments import FIG6_GENERATORS, TRANSFER_TEST
from .models import card, methods

FIG6_SETS = tuple(f"celebahq/{g}" for g in FIG6_GENERATORS)
LDM = "ldm"
# Second-hand context (DeCLIP, Smeu et al., WACV 2025, re-measuring Patch-Forensics on DOLOS)
DECLIP_PATCHES = {"in_domain": 69.0, "out_of_domain": 20.0}


def table2(method: str, setup: str) -> Cell:
    """A Table 2 cell: ``method`` under ``setup`` on CelebA-HQ Repaint-P2."""
    return (f"{method}-{setup}", TEST)


def in_domain(g: str) -> Cell:
    """Figure 6's diagonal: trained on generator ``g``, tested on it."""
    return (f"patches-full-{g}", f"celebahq/{g}")


def held_out(g: str) -> Cell:
    """Trained on the other three generators, tested on ``g``."""
    return (f"patches-full-allbut-{g}", f"celebahq/{g}")


def across(g: str, h: str) -> Cell:
    """Trained on generator ``g``, tested on generator ``h``."""
    return (f"patches-full-{g}", f"celebahq/{h}")


def has_setup(method: str, setup: str) -> bool:
    """Whether ``method`` trains its own setup (a method whose full supervision is another's has
    no setup C of its own)."""
    return not (setup == "C" and card(method).full_runs_of)


@register_claims
def table2_claims() -> list[Claim]:
    """Paper 5.1: Patches localizes best in every setup; weak labels cost it little."""
    rivals = [m for m in methods() if m != "patches" and not card(m).beyond_paper]
    count = {2: "two", 3: "three", 4: "four"}.get(len(rivals) + 1, str(len(rivals) + 1))
    out = []
    for s in "ABC":
        p, others = table2("patches", s), [table2(r, s) for r in rivals if has_setup(r, s)]
        out.append(Claim(
            f"T2-best-{s}", "paper", f"Patches localizes best of the {count} methods (setup {s})",
            parts=tuple(Part(f"patches-{s} - {o[0]}", plus=(p,), minus=(o,), refs=((o,),)) for o in others),
            shown=(p, *others), subjects=(p[0],), references=tuple(o[0] for o in others)))
    b, c = table2("patches", "B"), table2("patches", "C")
    out.append(Claim(
        "T2-weak", "paper", f"Weak labels cost Patches little: setup B reaches at least {WEAK_RATIO:g} of setup C's IoU",
        parts=(Part(f"patches-B - {WEAK_RATIO:g} patches-C", plus=(b,), minus=(c,), factor=WEAK_RATIO, refs=((c,),)),),
        shown=(b, c), subjects=(b[0],), references=(c[0],), ratio_of=(b, c)))
    return out


@register_claims
def table3_claims() -> list[Claim]:
    """Paper 5.2: trained on FFHQ, Patches localizes worse on CelebA-HQ."""
    out = []
    for s in "ABC":
        home, away = table2("patches", s), (f"patches-{s}-ffhq", TEST)
        out.append(Claim(
            f"T3-{s}", "paper", f"Localization drops across datasets: Patches trained on FFHQ is below Patches "
                                f"trained on CelebA-HQ, on CelebA-HQ (setup {s})",
            parts=(Part(f"patches-{s} - patches-{s}-ffhq", plus=(home,), minus=(away,), refs=((home,),)),),
            shown=(home, away), subjects=(away[0],), references=(home[0],), needs=("dataset shift",)))
    return out


@register_claims
def figure6_claims() -> list[Claim]:
    """Paper 5.3 and its headline: generators, held-out generators, and weak against other drops."""
    singles = tuple(f"patches-full-{g}" for g in FIG6_GENERATORS)
    diag = tuple(in_domain(g) for g in FIG6_GENERATORS)
    off = tuple(across(g, h) for g in FIG6_GENERATORS for h in FIG6_GENERATORS if g != h)
    b, c, c_ffhq = table2("patches", "B"), table2("patches", "C"), ("patches-C-ffhq", TEST)
    others = [g for g in FIG6_GENERATORS if g != LDM]
    return [
        Claim("F6-generators", "paper", "Localization drops across generators: trained on one generator, IoU on each "
              "of the other three is below IoU on its own",
              parts=tuple(Part(f"{g} on {g} - {g} on {h}", plus=(in_domain(g),), minus=(across(g, h),),
                               refs=((in_domain(g),),))
                          for g in FIG6_GENERATORS for h in FIG6_GENERATORS if g != h),
              shown=diag, subjects=singles, references=singles, test_sets=FIG6_SETS, needs=("generator transfer",)),
        Claim("headline", "paper", "Patches is less sensitive to weak supervision than to a change of dataset or of "
              "generator: its relative drop from C to B is below both the dataset drop (C to FFHQ-trained C) and the "
              "generator drop (Figure 6, in to out of domain)",
              parts=(DropGap("dataset drop - weak drop", larger=((c,), (c_ffhq,)), smaller=((c,), (b,)),
                             refs=((c,),), needs=("dataset shift",)),
                     DropGap("generator drop - weak drop", larger=(diag, off), smaller=((c,), (b,)),
                             refs=((c,), diag), needs=("generator transfer",))),
              shown=(b, c, c_ffhq), subjects=(b[0], c_ffhq[0]), references=(c[0], *singles),
              test_sets=(TEST, *FIG6_SETS), unit="points of C's IoU (%)"),
        Claim("F6-LDM-hardest", "paper", "LDM is the hardest generator in domain: trained and tested on LDM, Patches "
              "scores below each other generator's in-domain cell",
              parts=tuple(Part(f"{g} - {LDM} in domain", plus=(in_domain(g),), minus=(in_domain(LDM),),
                               refs=((in_domain(g),),)) for g in others),
              shown=diag, subjects=(f"patches-full-{LDM}",), references=tuple(f"patches-full-{g}" for g in others),
              test_sets=FIG6_SETS, needs=("generator transfer",)),
        Claim("F6-LDM-hardest-held-out", "paper", "LDM is the hardest held-out generator: trained on the other "
              "three, Patches scores lower on LDM than on any other held-out generator",
              parts=tuple(Part(f"{g} - {LDM} held out", plus=(held_out(g),), minus=(held_out(LDM),),
                               refs=((held_out(g),),)) for g in others),
              shown=tuple(held_out(g) for g in FIG6_GENERATORS), subjects=(f"patches-full-allbut-{LDM}",),
              references=tuple(f"patches-full-allbut-{g}" for g in others), test_sets=FIG6_SETS,
              needs=("generator transfer",)),
    ]


@register_claims
def our_claims() -> list[Claim]:
    """Ours: weak Patches against the trivial baselines; more training generators help."""
    b = table2("patches", "B")
    singles = tuple(f"patches-full-{g}" for g in FIG6_GENERATORS)

    def trained_elsewhere(g: str) -> tuple[Cell, ...]:      # the single-generator models tested on g
        return tuple(across(h, g) for h in FIG6_GENERATORS if h != g)
    return [
        Claim("T2-weak-above-baseline", "ours", "Weakly supervised Patches (B) localizes above marking everything fake",
              parts=(Part("patches-B - everything fake", plus=(b,), minus=((FAKE_ALL, TEST),),
                          refs=(((FAKE_ALL, TEST),),)),),
              shown=(b, (FAKE_ALL, TEST)), subjects=(b[0],)),
        Claim("T2-weak-above-prior", "ours", "Weakly supervised Patches (B) localizes above where fakes usually are "
              "(the mask prior)",
              parts=(Part("patches-B - mask prior", plus=(b,), minus=((PRIOR, TEST),), refs=(((PRIOR, TEST),),)),),
              shown=(b, (PRIOR, TEST)), subjects=(b[0],)),
        Claim("F6-more-generators", "ours", "Training on three generators helps every held-out one: on each "
              "generator, the model trained on the other three scores above the mean of the single-generator models "
              "trained on another generator (the smallest of the four gains)",
              parts=tuple(Part(f"gain on {g}", plus=(held_out(g),), minus=trained_elsewhere(g),
                               refs=(trained_elsewhere(g),)) for g in FIG6_GENERATORS),
              shown=tuple(held_out(g) for g in FIG6_GENERATORS),
              subjects=tuple(f"patches-full-allbut-{g}" for g in FIG6_GENERATORS), references=singles,
              test_sets=FIG6_SETS, needs=("generator transfer",)),
    ]


@register_claims
def weak_variant_claims() -> list[Claim]:
    """Ours, for every method that changes only the weak loss of another (e.g. Patches-MIL):
    its setup B under the same rules as the paper's T2-weak, and against full supervision on
    generators neither trains on."""
    out = []
    for m in methods():
        base = card(m).weak_variant_of
        if base is None:
            continue
        mine, full = table2(m, "B"), table2(card(m).full_runs_of or base, "C")
        fake_all, prior = (FAKE_ALL, TEST), (PRIOR, TEST)
        out.append(Claim(
            f"T2-{m}-B", "ours", f"{card(m).label}'s weak loss localizes: its setup B clears both trivial baselines "
                                 f"and reaches at least {WEAK_RATIO:g} of {full[0]}'s IoU",
            parts=(Part(f"{m}-B - everything fake", plus=(mine,), minus=(fake_all,), refs=((fake_all,),)),
                   Part(f"{m}-B - mask prior", plus=(mine,), minus=(prior,), refs=((prior,),)),
                   Part(f"{m}-B - {WEAK_RATIO:g} {full[0]}", plus=(mine,), minus=(full,), factor=WEAK_RATIO,
                        refs=((full,),))),
            shown=(mine, full, table2(base, "B"), fake_all, prior), subjects=(mine[0],), references=(full[0],),
            ratio_of=(mine, full)))
        pairs = [((mine[0], g), (full[0], g)) for g in TRANSFER_TEST]
        out.append(Claim(
            f"X-{m}-B-other-generators", "ours",
            f"Weak {card(m).label} localizes other generators better than full supervision: trained on "
            f"Repaint-P2 both, {m}-B's IoU is above {full[0]}'s on each of "
            f"{', '.join(g.split('/')[-1] for g in TRANSFER_TEST)} (a tie reads inconclusive)",
            parts=tuple(Part(f"{m}-B - {full[0]} on {a[1].split('/')[-1]}", plus=(a,), minus=(f,), refs=((f,),))
                        for a, f in pairs),
            shown=tuple(c for pair in pairs for c in pair), subjects=(mine[0],), references=(full[0],),
            test_sets=TRANSFER_TEST, needs=("generator transfer",)))
    return out


@register_claims
def context_rows() -> list[Context]:
    """Context, not a claim: Patch-Forensics as DeCLIP re-measured it on DOLOS, beside this run's
    Figure 6 means in and out of domain."""
    diag = tuple(in_domain(g) for g in FIG6_GENERATORS)
    off = tuple(across(g, h) for g in FIG6_GENERATORS for h in FIG6_GENERATORS if g != h)
    return [Context("context-DeCLIP", "Context, not a claim of the paper: Patch-Forensics re-measured on DOLOS "
                    f"(DeCLIP, WACV 2025) averages ~{DECLIP_PATCHES['in_domain']:.0f} IoU in-domain and "
                    f"~{DECLIP_PATCHES['out_of_domain']:.0f} out-of-domain",
                    (("in-domain", diag), ("out-of-domain", off)))]
