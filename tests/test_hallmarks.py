"""StarGAN v2's hallmarks (lit_gans.metrics.hallmarks), each checked on the ideal answer and on the failure it is
for: on the built-in shapes the ideal renders (the target shape at the source's position in the reference's
colour and size) score near 1 on colour and diversity and near 0 on position error; one colour whatever the
reference or code scores 0 diversity and about 0 colour-following; the identity keeps the source's shape. The
same translators through the judge's style statistics: retrieval and diversity high for the ideal, 0 for the
failures."""

from __future__ import annotations

import os

import pytest
import torch

from lit_gans.data.synthetic import SHAPES, _hsv_to_rgb, render_scenes, sample_scenes
from lit_gans.metrics.hallmarks import (
    SHAPES_BACKGROUND,
    feature_hallmarks,
    foreground,
    random_colours,
    retrieval,
    score_shapes,
    shape_scenes,
    shapes_hallmarks,
)
from lit_gans.metrics.judge import cached_judge

SIZE, LATENT = 32, 8
BG = torch.tensor(SHAPES_BACKGROUND)


@pytest.fixture(scope="module")
def judge():
    """The quickstart's judge: its training images are these (data_seed 0), so the session's cache holds one judge
    for both (tests/test_judge.py trains the same)."""
    x, y = sample_scenes(3, 256, SIZE, seed=0)
    return cached_judge(x, y, list(SHAPES[:3]), os.environ.get("LIT_GANS_JUDGE_CACHE"))


def _render(xb, t, colours):
    n = len(xb)
    _, centres = foreground(xb)
    return render_scenes(torch.as_tensor(t).expand(n), centres, torch.full((n,), 0.4), colours, BG.expand(n, 3), SIZE)


def ideal(xb, t, x_ref=None, z=None):
    """The target shape where the source's is, in the reference's colour, or in a colour that the code decides."""
    if x_ref is not None:
        return _render(xb, t, foreground(x_ref)[0])
    s = torch.sigmoid(z[:, :3])
    return _render(xb, t, _hsv_to_rgb(s[:, 0], 0.6 + 0.4 * s[:, 1], 0.75 + 0.25 * s[:, 2]))


def one_style(xb, t, x_ref=None, z=None):
    """The target shape where the source's is, always in the same colour: the collapse of the style path."""
    return _render(xb, t, torch.tensor([0.9, 0.3, 0.3]).expand(len(xb), 3))


def identity(xb, t, x_ref=None, z=None):
    return xb


def test_the_foreground_reads_the_colour_and_centre_a_scene_was_drawn_with():
    g = torch.Generator().manual_seed(0)
    n = 48
    centres = (torch.rand(n, 2, generator=g) * 2 - 1) * 0.45
    colours = random_colours(n, g)
    images = render_scenes(torch.arange(n) % 3, centres, 0.28 + 0.22 * torch.rand(n, generator=g), colours,
                           BG.expand(n, 3), SIZE)
    colour, centre = foreground(images)
    assert (colour - colours).norm(dim=1).mean() < 0.08  # anti-aliasing mixes some background into small shapes
    assert (centre - centres).norm(dim=1).mean() / 2 < 0.02


def test_the_shapes_hallmarks_score_the_ideal_near_1_and_one_style_or_the_identity_near_0():
    scenes = shape_scenes(3, SIZE, n=60, seed=0)
    g = torch.Generator().manual_seed(1)
    perfect = score_shapes(scenes, scenes.ideal(), torch.stack([scenes.ideal(random_colours(60, g)) for _ in range(4)]))
    assert perfect["shapes_colour_followed"] >= 0.85 and perfect["shapes_colour_diversity"] >= 0.8
    assert perfect["shapes_position_error"] <= 0.02
    red = torch.tensor([0.9, 0.3, 0.3]).expand(60, 3)
    collapsed = score_shapes(scenes, scenes.ideal(red), torch.stack([scenes.ideal(red)] * 4))
    assert abs(collapsed["shapes_colour_followed"]) <= 0.15 and collapsed["shapes_colour_diversity"] == 0.0
    assert collapsed["shapes_position_error"] <= 0.02  # the content is kept: only the style failed
    unchanged = score_shapes(scenes, scenes.sources, torch.stack([scenes.sources] * 4))
    assert abs(unchanged["shapes_colour_followed"]) <= 0.15 and unchanged["shapes_colour_diversity"] == 0.0
    moved = scenes.ideal().roll(8, dims=-1)  # 8 px of 32 to the right: a quarter of the width
    assert score_shapes(scenes, moved, torch.stack([moved] * 2))["shapes_position_error"] >= 0.18


def test_the_hallmarks_of_a_translator_on_the_shapes_and_in_the_judges_features(judge):
    x, y = sample_scenes(3, 8, SIZE, seed=3)
    reals, real_labels = sample_scenes(3, 32, SIZE, seed=4)
    got = {}
    for name, translate in (("ideal", ideal), ("one_style", one_style), ("identity", identity)):
        got[name] = {**feature_hallmarks(translate, judge, x, y, reals, real_labels, LATENT, num_styles=4),
                     **shapes_hallmarks(translate, LATENT, 3, SIZE, judge.predict, n=30)}
    perfect, collapsed, unchanged = got["ideal"], got["one_style"], got["identity"]
    assert perfect["judge_accuracy_ref"] >= 0.95 and perfect["shapes_target_ref"] >= 0.95
    assert perfect["shapes_target_latent"] >= 0.95 and perfect["shapes_position_error"] <= 0.03
    assert perfect["ref_retrieval"] >= 0.8 and perfect["latent_diversity"] >= 0.5
    assert perfect["shapes_colour_followed"] >= 0.75 and perfect["shapes_colour_diversity"] >= 0.5
    assert collapsed["judge_accuracy_ref"] >= 0.95  # the judge alone cannot tell: the failure the hallmarks catch
    assert collapsed["ref_retrieval"] == pytest.approx(0, abs=1e-9) and collapsed["latent_diversity"] == 0
    assert collapsed["shapes_colour_diversity"] == 0 and collapsed["shapes_colour_followed"] <= 0.15
    assert unchanged["judge_accuracy_ref"] == 0 and unchanged["shapes_target_latent"] == 0
    assert unchanged["ref_retrieval"] == pytest.approx(0, abs=1e-9) and unchanged["latent_diversity"] == 0
    assert set(perfect["ref_retrieval_domains"]) == {0, 1, 2}


def test_retrieval_is_1_when_each_output_is_its_reference_and_0_when_one_output_serves_every_reference():
    refs = torch.randn(4, 5, 6, generator=torch.Generator().manual_seed(0))  # 4 references for each of 5 sources
    assert torch.allclose(retrieval(refs, refs), torch.ones(5, dtype=refs.dtype))
    one_output = torch.randn(1, 5, 6, generator=torch.Generator().manual_seed(1)).expand_as(refs)
    assert retrieval(one_output, refs).abs().max() <= 1e-6  # each pair of references: one wins, one loses
