"""What each logged curve is and how to read it.

The StarGAN v2 texts follow the latent-StarGAN recipe (Choi et al. 2020's objective with a hinge loss and lazy R1 on
SD-VAE latents, see ``conf/loss/stargan.yaml``): every formula is the one the model computes (see :mod:`lit_gans.models.stargan_v2`); the unpaired, pix2pix and diffusion texts use
JoliGEN's reading of its curves (adversarial curves oscillate, reconstruction curves descend).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lit_gans.curves.reading import Run


@dataclass(frozen=True)
class Explanation:
    """``what``: what the number is; ``read``: how its curve should look and what to conclude from it;
    ``kind``: adversarial | descending | regulariser | schedule | total (JoliGEN's vocabulary, extended)."""

    what: str
    read: str
    kind: str


EPOCH_MEAN = ("Each point is the plain mean of the epoch's per-batch values; the band is the spread of the "
              "logged per-batch values within the epoch.")

STARGAN: dict[str, Explanation] = {
    "d_loss": Explanation(
        "Discriminator total (what D minimises): d_adv, the adversarial loss averaged over the reference path "
        "and the latent path, plus w_r1 * r1_interval * r1 on the batches where R1 is computed (the factor "
        "r1_interval compensates for computing R1 only every r1_interval batches).",
        "With the hinge loss, relu(1 - D(real)) + relu(1 + D(fake)) is 2 when D's logits sit at 0, so a curve "
        "near 2 means D separates real from fake only weakly (logits inside the margin). Not broken by itself, "
        "but many epochs flat at 2 means D is not learning: check learning rates, R1 weight and the grids. A "
        "d_loss sinking towards 0 means D wins (fakes are easy to spot); watch g_adv rise at the same time.",
        "adversarial"),
    "d_adv": Explanation(
        "The adversarial part of d_loss without R1: 0.5 * (adv_D(real refs, fakes of the reference path) + "
        "adv_D(real refs, fakes of the latent path)), conditioned on the target domain.",
        "Same reading as d_loss (hinge: 2 at zero logits); the gap between d_loss and d_adv is the R1 share.",
        "adversarial"),
    "d_mismatch": Explanation(
        "Matching-aware term (loss.w_mismatch; 0 and not computed when that is 0): the fake side of the adversarial "
        "loss on the real sources shown to the head of a domain they are not in (hinge: mean(relu(1 + D_y'(x))) "
        "for x of domain y, y' != y). It enters d_loss with weight w_mismatch.",
        "Falling means each head of D tells its own domain from real images of the others (what makes G change "
        "the domain's content, a square's corners rather than only its colour). Near 1 (hinge) means D's heads "
        "do not tell domains apart yet.",
        "adversarial"),
    "r1": Explanation(
        "R1 gradient penalty, raw: mean over the batch of ||d sum(D(x_real)) / d x_real||^2, computed in float32 "
        "with autocast off, only every r1_interval batches and logged as 0 on the others (so its epoch mean is "
        "about raw R1 / r1_interval). Not multiplied by w_r1 or r1_interval.",
        "Small and roughly stable is healthy. A steadily growing r1 means D's surface around real data gets "
        "steeper: D is sharpening or overfitting, often before a collapse; raise w_r1 or lower D's learning rate.",
        "regulariser"),
    "g_loss": Explanation(
        "Generator total (G, style encoder E and mapping network F are updated on it): w_adv*g_adv + "
        "w_sty*sty + w_cyc*cyc + w_id*id - lambda_ds*ds.",
        "A weighted sum that includes a term with a minus sign (diversity): it falling does not by itself mean "
        "better images, and it may rise when lambda_ds decays. Read its parts and the sample grids.",
        "total"),
    "g_adv": Explanation(
        "Generator adversarial loss, the reference path plus the latent path (a sum of two terms): with hinge, "
        "-mean(D(fake)) each, so G pushes D's logits on its fakes up.",
        "Adversarial: it oscillates against d_loss rather than converging. A steady rise while d_loss falls "
        "means D is winning.",
        "adversarial"),
    "sty": Explanation(
        "Style reconstruction: L1 between the style used to make a fake and the style the encoder E reads back "
        "from it, E(G(x, s), y) vs s, summed over the reference and latent paths.",
        "Should descend: G must put the target style into its output in a way E recognises.",
        "descending"),
    "ds": Explanation(
        "Diversity-sensitive distance: L1 between two fakes of the same source under two random styles "
        "F(z1), F(z2) (clamped at ds_margin when set). The raw distance, a positive number.",
        "It enters g_loss with a minus sign (G is pushed to make it larger), weighted by lambda_ds, which decays "
        "linearly to 0 over ds_decay_epochs: late in training it no longer pushes. A ds that collapses to 0 "
        "means the styles no longer change the output (mode collapse).",
        "maximised"),
    "cyc": Explanation(
        "Cycle consistency: translate to the target domain, translate back with the source's own style "
        "E(x, y_src), L1 to the input; summed over the reference and latent paths.",
        "Should descend: the translation keeps the content (pose, layout) of the input.",
        "descending"),
    "id": Explanation(
        "Identity: L1 between G(x, E(x, y_src)) and x (a source translated with its own style). Only computed "
        "when w_id > 0; logged as 0 otherwise.",
        "Flat 0 means it is off. When on, it should descend.",
        "descending"),
    "lambda_ds": Explanation(
        "The current diversity weight, w_ds * (1 - clamp((epoch - 1) / ds_decay_epochs, 0, 1)): w_ds in epoch 1, "
        "0 from epoch ds_decay_epochs + 1 on.",
        "A schedule, not a loss: a straight line down to 0. Once it is 0, ds is not computed any more.",
        "schedule"),
}

# Unpaired models (CycleGAN, CUT, FastCUT) and pix2pix, in JoliGEN's names; Palette's single diffusion loss.
NAMED: dict[str, Explanation] = {
    "G_tot": Explanation(
        "Generator total: the weighted sum of every G_* term (what the generator is updated on).",
        "Adversarial parts keep it from converging to 0; noisy but stable is a sign of balanced training.",
        "total"),
    "D_tot": Explanation(
        "Discriminator total: the weighted sum of every D_* term (each discriminator's real and fake halves).",
        "Adversarial: it should stay noisy around a level. Falling towards 0 means the discriminators win.",
        "total"),
    "G_NCE": Explanation(
        "PatchNCE (CUT): contrastive loss between patches of the input A and the same locations of G(A), "
        "other patches as negatives; keeps content without a cycle.",
        "Descending.", "descending"),
    "G_NCE_Y": Explanation(
        "PatchNCE on identity (CUT with nce_idt): between B and G(B), keeps G from changing images already in "
        "domain B.", "Descending.", "descending"),
    "G_L1": Explanation("pix2pix: mean absolute error between G(A) and the target B (weight lambda_l1, 100 in "
                        "the paper).", "Descending: the supervised part of pix2pix.", "descending"),
    "G_L2": Explanation("pix2pix (extended): mean squared error between G(A) and B.", "Descending.", "descending"),
    "G_SOBEL": Explanation("pix2pix (extended): distance between the Sobel edge maps of G(A) and B (structure).",
                           "Descending; slower than G_L1 as edges sharpen late.", "descending"),
    "G_LAP": Explanation("pix2pix (extended): distance between the Laplacian maps of G(A) and B (fine texture).",
                         "Descending.", "descending"),
    "G_VGG": Explanation("pix2pix (+vgg): VGG19 perceptual loss, weighted feature distances of G(A) and B.",
                         "Descending.", "descending"),
    "G_GAN": Explanation("pix2pix: generator adversarial loss against the conditional PatchGAN D(A, G(A)).",
                         "Adversarial: oscillates against D_real/D_fake.", "adversarial"),
    "D_real": Explanation("pix2pix: discriminator loss on real pairs (A, B), one half of D's loss (weight 0.5).",
                          "Adversarial: a D_real near 0 for long means D is sure of every real pair.",
                          "adversarial"),
    "D_fake": Explanation("pix2pix: discriminator loss on generated pairs (A, G(A)), the other half (weight 0.5).",
                          "Adversarial: near 0 for long means D spots every fake; G_GAN then rises.",
                          "adversarial"),
    "f_s": Explanation("Semantic masks: the segmenter's own cross-entropy on real images and their masks.",
                       "Descending.", "descending"),
}

PATTERNS: list[tuple[re.Pattern[str], Explanation]] = [
    (re.compile(r"G_GAN_D_([AB])_(\w+)"), Explanation(
        "Generator loss against discriminator '{1}' judging domain {0} (one curve per discriminator).",
        "Adversarial: no steady trend expected; it oscillates against D_GAN_D_{0}_{1}.", "adversarial")),
    (re.compile(r"D_GAN_D_([AB])_(\w+)"), Explanation(
        "Discriminator '{1}' on domain {0}: its loss on real images plus on fakes (weight 0.5: their mean).",
        "Adversarial: stable and noisy is good; towards 0 means this discriminator wins.", "adversarial")),
    (re.compile(r"G_cycle_([AB])"), Explanation(
        "CycleGAN cycle consistency from domain {0}: L1 between a {0} image translated there and back, and the "
        "original (weight lambda_{0}).", "Descending: content survives the round trip.", "descending")),
    (re.compile(r"G_idt_([AB])"), Explanation(
        "CycleGAN identity: L1 between a generator's output on an image already in its output domain and that "
        "image (weight lambda_identity times the cycle weight).", "Descending: colours are not shifted needlessly.",
        "descending")),
    (re.compile(r"G_sem_mask_(\w+)"), Explanation(
        "Semantic-mask conservation {0}: the segmenter's loss on the translated image against the source's mask.",
        "Descending: the objects' classes survive translation.", "descending")),
    (re.compile(r"G_out_mask_(\w+)"), Explanation(
        "Conservation outside the masks {0}: L1 between input and output where the mask is background.",
        "Descending: the background is left unchanged.", "descending")),
]

DIFFUSION_G_TOT = Explanation(
    "Diffusion (Palette): the denoising loss, the error of the predicted noise at a random time step.",
    "The one curve of a diffusion model, descending (noisy because every batch draws new time steps).",
    "descending")


def explain_curve(short: str, group: str = "", diffusion: bool = False) -> Explanation:
    """The explanation of a curve by its name without group (``d_loss``, ``G_GAN_D_B_basic``)."""
    if short == "G_tot" and diffusion:
        return DIFFUSION_G_TOT
    if short in STARGAN:
        return STARGAN[short]
    if short in NAMED:
        return NAMED[short]
    for pattern, e in PATTERNS:
        m = pattern.fullmatch(short)
        if m:
            return Explanation(e.what.format(*m.groups()), e.read.format(*m.groups()), e.kind)
    return generic(short, group)


def generic(short: str, group: str) -> Explanation:
    """Fallback for names this module does not know, from their tag (G/D) or prefix."""
    side = group if group in ("G", "D") else short.split("_", 1)[0] if short[:2] in ("G_", "D_") else ""
    if side == "G":
        return Explanation(f"A generator term ({short}), in the generator's total with its configured weight.",
                           "Reconstruction-like terms should descend; adversarial ones oscillate.", "unknown")
    if side == "D":
        return Explanation(f"A discriminator term ({short}), in the discriminator's total.",
                           "Adversarial: expect no steady trend; towards 0 means the discriminator wins.", "unknown")
    return Explanation(f"A logged scalar ({short}) without a description here.",
                       "Compare its trend with the losses and the sample grids.", "unknown")


def is_diffusion(run: Run) -> bool:
    return run.find("G_tot") is not None and not any(c.group == "D" for c in run.curves.values())


def run_settings(run: Run) -> str:
    """One line of the run's loss settings that change how the curves read (from its Hydra config)."""
    keys = ("subspec", "adversarial", "w_r1", "r1_interval", "w_ds", "ds_decay_epochs", "ds_margin", "lambda_l1")
    found = [f"{k}={run.loss_option(k)}" for k in keys if run.loss_option(k) is not None]
    scale = (run.config.get("model") or {}).get("latent_scale") if isinstance(run.config.get("model"), dict) else None
    if isinstance(scale, (int, float)) and scale != 1.0:
        found.append(f"latent_scale={scale} (losses are measured on latents times this factor)")
    return ", ".join(found)


ORDER = (*STARGAN, "G_tot", "D_tot")


def curve_order(name: str) -> tuple[str, int, str]:
    """Sort key: group, then totals and the StarGAN terms in the order of the seed document, then by name."""
    group, _, short = name.rpartition("/")
    return group, ORDER.index(short) if short in ORDER else len(ORDER), short
