"""Every model x supervision: shapes, finiteness, gradients, learning; losses by hand."""

from __future__ import annotations

import math

import pytest
import torch

from dolos_core import losses
from dolos_core.losses import LossConfig
from dolos_core.models import (MODELS, InitError, build_model, list_models,
                               map_patch_forensics_names, register_model)

CASES = list_models()          # every registered method x supervision
# map side at 128 px (mini) and 299 px (paper); Grad-CAM weak maps come at the input size
MAP_SIDE = {("patches", 128): 16, ("patches", 299): 37, ("gradcam-weak", 128): 128,
            ("gradcam-weak", 299): 299, ("xception", 128): 8, ("xception", 299): 19}


def _side(method, sup, size):
    if method.startswith("patches"):        # Patches and the methods built on its network
        return MAP_SIDE[("patches", size)]
    if method == "gradcam" and sup == "weak":
        return MAP_SIDE[("gradcam-weak", size)]
    return MAP_SIDE[("xception", size)]


def _batch(size, n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(n, size, size)
    mask[:, size // 4: size // 2, size // 4: size // 2] = 1
    mask[0] = 0
    return {"image": torch.randn(n, 3, size, size, generator=g), "label": torch.tensor([0, 1, 1, 1][:n]),
            "mask": mask, "has_mask": torch.ones(n, dtype=torch.bool)}


@pytest.mark.parametrize("method,sup", CASES)
@pytest.mark.parametrize("size", [128, 299])
def test_predict_shapes_and_range(method, sup, size):
    torch.manual_seed(0)
    model = build_model(method, sup).eval()
    x = torch.randn(2, 3, size, size)
    maps, scores = model.predict(x)
    side = _side(method, sup, size)
    assert maps.shape == (2, side, side) and scores.shape == (2,)
    assert torch.isfinite(maps).all() and torch.isfinite(scores).all()
    assert maps.min() >= 0 and maps.max() <= 1
    if sup == "full" or method == "patches":  # mean fake probabilities; weak Xception: logits
        assert scores.min() >= 0 and scores.max() <= 1


@pytest.mark.parametrize("method", ["gradcam", "attention"])
def test_weak_xception_scores_are_the_raw_fake_logit(method):
    """The authors rank images by the fake logit (output 1) of weak Grad-CAM and Attention, not
    by a softmax probability, which saturates to exactly 1.0 in float32 and ties."""
    torch.manual_seed(0)
    model = build_model(method, "weak").eval()
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        logits = model(x)["logits"]
    _, scores = model.predict(x)
    torch.testing.assert_close(scores, logits[:, 1].float())
    big = torch.tensor([[-30.0, 30.0], [-40.0, 40.0]])
    assert big.softmax(1)[0, 1] == big.softmax(1)[1, 1] == 1.0  # why a probability would tie


@pytest.mark.parametrize("method", list(MODELS))
def test_full_supervision_scores_are_the_mean_of_the_map(method):
    torch.manual_seed(0)
    model = build_model(method, "full").eval()
    maps, scores = model.predict(torch.randn(2, 3, 64, 64))
    torch.testing.assert_close(scores, maps.mean((1, 2)))


def test_weak_patches_start_as_the_authors_init():
    """Patch-Forensics' init (Xavier gain 0.02, BatchNorm weights N(1, 0.02)): at step 0 the two
    logits of every cell are nearly equal, so the loss is ln 2 (a gain-1 init gives a per-cell
    logit spread of ~2.5 and a loss of ~1.4)."""
    torch.manual_seed(0)
    model = build_model("patches", "weak").train()
    batch = _batch(64)
    out = model(batch["image"])
    logits = out["map_logits"]
    assert (logits[:, 1] - logits[:, 0]).std() < 0.2
    assert model.loss(out, batch).item() == pytest.approx(math.log(2), abs=0.02)
    bn = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    w = torch.cat([m.weight.detach() for m in bn])
    assert w.std() < 0.05 and abs(w.mean() - 1) < 0.01 and (w != 1).any()
    conv1 = model.features[0].weight
    assert conv1.std() < 0.02 * math.sqrt(2 / (27 + 32 * 9)) * 1.5


def test_authors_weak_init_starts_with_silent_separable_convolutions():
    """Why the mini profile gives weak Patches PyTorch's init: with Xavier gain 0.02 the
    depthwise x pointwise products of block1/block2 are so small that their BatchNorm inputs
    have a variance below BatchNorm's epsilon (1e-5); those paths output almost nothing and only
    the 1x1 skip convolutions carry the image. PyTorch's init has no such dead start."""
    x = torch.randn(4, 3, 96, 96) * 0.5

    def rep_std(model):
        stds = {}
        hooks = [m.register_forward_hook(lambda mod, i, o, n=n: stds.__setitem__(n, float(o.detach().std())))
                 for n, m in model.named_modules() if n.endswith("rep.4") or n.endswith("skipbn")]
        model.train()(x)
        for h in hooks:
            h.remove()
        return stds

    torch.manual_seed(0)
    authors = rep_std(build_model("patches", "weak"))
    torch.manual_seed(0)
    pytorch = rep_std(build_model("patches", "weak", weak_init="pytorch"))
    assert authors["features.6.rep.4"] < 0.01 and authors["features.6.skipbn"] > 0.5
    assert pytorch["features.6.rep.4"] > 0.5


def test_weak_patches_pytorch_init_option():
    torch.manual_seed(0)
    model = build_model("patches", "weak", weak_init="pytorch")
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            assert m.weight.abs().max() <= 1 / math.sqrt(m.weight[0].numel()) + 1e-6
    with pytest.raises(ValueError, match="weak_init"):
        build_model("patches", "weak", weak_init="xavier")


def test_full_patches_keep_pytorchs_default_init():
    """Full supervision keeps torch's default layer init (Kaiming-uniform, |w| <= 1/sqrt(fan_in)),
    neither timm's Kaiming-normal nor Patch-Forensics' Xavier."""
    torch.manual_seed(0)
    model = build_model("patches", "full")
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            fan_in = m.weight[0].numel()
            assert m.weight.abs().max() <= 1 / math.sqrt(fan_in) + 1e-6
            assert m.weight.std() > 0.3 / math.sqrt(fan_in)


@pytest.mark.parametrize("method,sup", CASES)
def test_gradients_reach_the_backbone_and_steps_lower_the_loss(method, sup):
    torch.manual_seed(0)
    model = build_model(method, sup).train()
    batch = _batch(64)
    first_conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses_seen = []
    for step in range(6):
        out = model(batch["image"])
        loss = model.loss(out, batch)
        opt.zero_grad()
        loss.backward()
        if step == 0:
            g = first_conv.weight.grad
            assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0
        opt.step()
        losses_seen.append(loss.item())
    assert all(math.isfinite(v) for v in losses_seen)
    assert losses_seen[-1] < losses_seen[0], losses_seen


def test_gradcam_is_batched_and_normalised():
    torch.manual_seed(0)
    model = build_model("gradcam", "weak").eval()
    x = torch.randn(3, 3, 64, 64)
    maps, _ = model.predict(x)
    # each image's map equals the map computed alone (no cross-talk through the batch)
    alone, _ = model.predict(x[1:2])
    torch.testing.assert_close(maps[1:2], alone, atol=1e-5, rtol=1e-4)
    peak = maps.flatten(1).amax(1)
    assert torch.all((peak > 0.999) | (peak == 0))  # min-max normalised per image


def test_gradcam_matches_a_hook_based_reference():
    """Against the textbook recipe with hooks on block11 (as pytorch-grad-cam does it)."""
    import torch.nn.functional as F

    torch.manual_seed(1)
    model = build_model("gradcam", "weak").eval()
    x = torch.randn(2, 3, 64, 64)
    acts, grads = {}, {}
    layer = model.body[-1]

    def keep_act(module, inputs, output):
        acts["a"] = output

    def keep_grad(module, grad_in, grad_out):
        grads["g"] = grad_out[0]

    h1 = layer.register_forward_hook(keep_act)
    h2 = layer.register_full_backward_hook(keep_grad)
    try:
        logits = model(x.requires_grad_(True))["logits"]
        logits[:, 1].sum().backward()
    finally:
        h1.remove()
        h2.remove()
    cam = F.relu((grads["g"].mean((2, 3), keepdim=True) * acts["a"]).sum(1)).detach()
    cam = cam - cam.amin((1, 2), keepdim=True)
    cam = cam / (1e-7 + cam.amax((1, 2), keepdim=True))
    cam = F.interpolate(cam[:, None], size=(64, 64), mode="bilinear", align_corners=False)[:, 0]
    cam = F.relu(cam)
    cam = cam - cam.amin((1, 2), keepdim=True)
    cam = cam / (1e-7 + cam.amax((1, 2), keepdim=True))
    ours, _ = model.predict(x.detach())
    torch.testing.assert_close(ours, cam, atol=1e-4, rtol=1e-3)


def test_losses_by_hand():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    label = torch.tensor([0, 1])
    expect = -(math.log(math.exp(2) / (math.exp(2) + 1)) + math.log(math.e / (1 + math.e))) / 2
    assert losses.image_ce(logits, label).item() == pytest.approx(expect, rel=1e-6)
    # patch CE: one image, 1x2 map, targets [0, 1]
    pl = torch.tensor([[[[2.0, 0.0]], [[0.0, 1.0]]]])      # (1, 2, 1, 2)
    assert losses.patch_ce(pl, torch.tensor([[[0, 1]]])).item() == pytest.approx(
        -(math.log(math.exp(2) / (math.exp(2) + 1)) + math.log(math.e / (1 + math.e))) / 2, rel=1e-6)
    p = torch.tensor([[[0.8, 0.25]]])
    m = torch.tensor([[[1.0, 0.0]]])
    assert losses.map_bce(p, m).item() == pytest.approx(-(math.log(0.8) + math.log(0.75)) / 2, rel=1e-5)
    assert losses.registered_map_loss(p, m, "l1").item() == pytest.approx((0.2 + 0.25) / 2)
    assert losses.registered_map_loss(p, m, "l2").item() == pytest.approx((0.04 + 0.0625) / 2)
    # attention weak: CE + lambda * BCE(max map, label)
    att = torch.tensor([[[0.1, 0.6]], [[0.3, 0.2]]])
    lab = torch.tensor([1, 0])
    lg = torch.zeros(2, 2)
    bce = -(math.log(0.6) + math.log(1 - 0.3)) / 2
    assert losses.attention_weak(lg, att, lab, lam=1.0).item() == pytest.approx(math.log(2) + bce, rel=1e-5)
    assert losses.attention_weak(lg, att, lab, lam=0.5).item() == pytest.approx(math.log(2) + bce / 2, rel=1e-5)
    assert losses.score_bce(torch.tensor([0.9]), torch.tensor([1])).item() == pytest.approx(-math.log(0.9), rel=1e-5)


@pytest.mark.parametrize("method", list(MODELS))
@pytest.mark.parametrize("localize", ["paper", "l1"])
def test_full_loss_honours_rho_class_and_rho_localize_for_every_method(method, localize):
    """L = rho_localize * L_localize + rho_class * L_class, the same rule for all three methods
    (Patches and Grad-CAM: BCE on the mean-map score; Attention: CE on its logits)."""
    torch.manual_seed(0)
    batch = _batch(64)
    base = build_model(method, "full", loss_cfg=LossConfig(localize=localize)).eval()
    both = build_model(method, "full", loss_cfg=LossConfig(localize=localize, rho_class=2.0,
                                                           rho_localize=0.5)).eval()
    both.load_state_dict(base.state_dict())
    out = base(batch["image"])
    l_loc = base.loss(out, batch)
    l_cls = (losses.image_ce(out["logits"], batch["label"]) if method == "attention"
             else losses.score_bce(out["score"], batch["label"]))
    assert l_cls.item() > 0.01
    assert both.loss(out, batch).item() == pytest.approx(0.5 * l_loc.item() + 2.0 * l_cls.item(), rel=1e-5)


def test_registry_builds_by_name_and_rejects_strangers():
    assert CASES[:2] == [("gradcam", "weak"), ("gradcam", "full")] and len(CASES) == 7
    assert ("patches-mil", "weak") in CASES and ("patches-mil", "full") not in CASES    # its C is Patches C
    with pytest.raises(TypeError, match="takes no option"):
        build_model("gradcam", "weak", weak_init="pytorch")
    with pytest.raises(TypeError, match="not a DolosModel"):
        register_model(dict)
    with pytest.raises(ValueError, match="supervision"):
        MODELS["patches"]("semi")


def test_patch_forensics_weight_names(tmp_path):
    """The authors' Patches release uses CustomXceptionNet names: map them onto ours."""
    torch.manual_seed(0)
    model = build_model("patches", "full")
    inverse = {"features.0": "conv1", "features.1": "bn1", "features.3": "conv2", "features.4": "bn2",
               "features.6": "block1", "features.7": "block2", "convout": "convout"}
    theirs = {}
    for k, v in model.state_dict().items():
        for ours, name in inverse.items():
            if k.startswith(ours + "."):
                theirs["module." + name + k[len(ours):]] = torch.randn_like(v.float()).to(v.dtype)
    assert "module.block2.rep.1.conv1.weight" in theirs or any(k.startswith("module.block2.") for k in theirs)
    path = tmp_path / "patches_release.pth"
    torch.save({"state_dict": theirs}, path)
    mapped = map_patch_forensics_names({k.removeprefix("module."): v for k, v in theirs.items()})
    assert set(mapped) == set(model.state_dict())
    loaded = build_model("patches", "full", init=str(path))
    for k, v in loaded.state_dict().items():
        torch.testing.assert_close(v, theirs["module." + next(
            n + k[len(o):] for o, n in inverse.items() if k.startswith(o + "."))])


def test_bad_checkpoints_give_clear_errors(tmp_path):
    with pytest.raises(InitError, match="does not exist"):
        build_model("patches", "weak", init=str(tmp_path / "missing.pt"))
    bad = tmp_path / "bad.pt"
    torch.save({"something": torch.zeros(3)}, bad)
    with pytest.raises(InitError, match="does not fit"):
        build_model("patches", "weak", init=str(bad))
    with pytest.raises(KeyError, match="unknown method"):
        build_model("patchez", "weak")


def _ffd_state() -> dict:
    """A state dict with the FFD checkpoint's names and shapes: FFD's Xception follows Cadene's
    layout but calls a separable conv's depthwise part ``c``, a block's skip BatchNorm
    ``skip_bn``, the classifier ``last_linear``, and adds the map ``map.c.{c,pointwise}``."""
    import timm

    ffd = {}
    for k, v in timm.create_model("legacy_xception", pretrained=False, num_classes=2).state_dict().items():
        k = k.replace(".skipbn.", ".skip_bn.").replace("fc.", "last_linear.").replace(".conv1.", ".c.")
        ffd[k] = torch.randn_like(v.float()).to(v.dtype)
    ffd["map.c.c.weight"] = torch.randn(728, 1, 3, 3)
    ffd["map.c.pointwise.weight"] = torch.randn(1, 728, 1, 1)
    return ffd


def test_ffd_checkpoint_loads_into_attention(tmp_path):
    """The FFD authors' ``xcp_reg.tar`` (weights under ``net``, FFD's own module names, a map
    whose pointwise conv has no bias) loads completely: every tensor lands where it belongs."""
    ffd = _ffd_state()
    for name, shape in {"block1.rep.0.c.weight": (64, 1, 3, 3), "block1.rep.0.pointwise.weight": (128, 64, 1, 1),
                        "block1.skip_bn.weight": (128,), "conv3.c.weight": (1024, 1, 3, 3),
                        "last_linear.weight": (2, 2048), "map.c.pointwise.weight": (1, 728, 1, 1)}.items():
        assert tuple(ffd[name].shape) == shape, name  # the names and shapes of FFD's Xception
    path = tmp_path / "xcp_reg.tar"
    torch.save({"net": ffd}, path)
    for sup in ("weak", "full"):
        model = build_model("attention", sup, init=str(path))
        own = model.state_dict()
        assert len(own) == len(ffd)
        torch.testing.assert_close(own["body.0.weight"], ffd["conv1.weight"])
        torch.testing.assert_close(own["body.7.rep.1.conv1.weight"], ffd["block2.rep.1.c.weight"])
        torch.testing.assert_close(own["body.12.rep.8.weight"], ffd["block7.rep.8.weight"])
        torch.testing.assert_close(own["tail.0.skip.weight"] if "tail.0.skip.weight" in own
                                   else own["tail.4.skip.weight"], ffd["block12.skip.weight"])
        torch.testing.assert_close(own["tail.4.skipbn.running_var"], ffd["block12.skip_bn.running_var"])
        torch.testing.assert_close(own["attention.0.weight"], ffd["map.c.c.weight"])
        torch.testing.assert_close(own["attention.1.weight"], ffd["map.c.pointwise.weight"])
        torch.testing.assert_close(own["fc.weight"], ffd["last_linear.weight"])
        assert "attention.1.bias" not in own


def test_an_ffd_file_without_its_attention_map_fails_loudly(tmp_path):
    ffd = {k: v for k, v in _ffd_state().items() if not k.startswith("map.")}
    path = tmp_path / "xcp_no_map.tar"
    torch.save({"net": ffd}, path)
    with pytest.raises(InitError, match=f"checkpoint {path} is an FFD Xception without its attention map"):
        build_model("attention", "weak", init=str(path))
    build_model("gradcam", "weak", init=str(path))      # as a plain Xception it still serves Grad-CAM


def test_imagenet_xception_files_load_into_gradcam(tmp_path):
    """timm's legacy_xception ImageNet file and Cadene's (2-D pointwise weights) both load; the
    1000-class head is left out (ours has 2 classes)."""
    import timm

    net = timm.create_model("legacy_xception", pretrained=False, num_classes=1000)
    state = {k: torch.randn_like(v.float()).to(v.dtype) for k, v in net.state_dict().items()}
    cadene = {k: (v[:, :, 0, 0] if k.endswith("pointwise.weight") else v) for k, v in state.items()}
    for name, sd in (("legacy_xception.pth", state), ("xception-b5690688.pth", cadene)):
        torch.save(sd, tmp_path / name)
        for sup in ("weak", "full"):
            model = build_model("gradcam", sup, init=str(tmp_path / name))
            own = model.state_dict()
            torch.testing.assert_close(own["body.0.weight"], state["conv1.weight"])
            torch.testing.assert_close(own["body.16.rep.1.pointwise.weight"], state["block11.rep.1.pointwise.weight"])
            if sup == "weak":
                torch.testing.assert_close(own["tail.1.conv1.weight"], state["conv3.conv1.weight"])
                assert own["fc.weight"].shape == (2, 2048)


def test_mil_pooling_by_hand():
    """Patches-MIL's pooled image logit on a hand-made 2x2 map of per-cell logits."""
    from dolos_core.models.patches_mil import pool_logits

    d = torch.tensor([[[2.0, -1.0], [0.0, -3.0]]])
    assert pool_logits(d, "max").item() == pytest.approx(2.0)
    assert pool_logits(d, "topk", k=0.5).item() == pytest.approx(1.0)          # mean of 2 and 0
    assert pool_logits(d, "topk", k=0.1).item() == pytest.approx(2.0)          # at least one cell
    lse = math.log((math.exp(2 * 2) + math.exp(-2) + 1 + math.exp(-6)) / 4) / 2
    assert pool_logits(d, "lse", r=2.0).item() == pytest.approx(lse, rel=1e-5)
    p = torch.sigmoid(d).flatten()
    noisy_or = 1 - torch.prod(1 - p)
    assert torch.sigmoid(pool_logits(d, "noisy-or")).item() == pytest.approx(noisy_or.item(), rel=1e-5)
    with pytest.raises(ValueError, match="pooling must be one of"):
        pool_logits(d, "mean")


def test_mil_loss_leaves_real_looking_cells_of_a_fake_alone():
    """Under top-k pooling, a fake image's gradient reaches only its top cells: the per-patch
    label of weak Patches would push every cell."""
    model = build_model("patches-mil", "weak", weak_init="pytorch")
    logits = torch.zeros(1, 2, 4, 4)
    logits[0, 1, 0, 0] = 3.0                       # one cell looks fake
    logits.requires_grad_(True)
    out = {"map_logits": logits, "score": model.image_logit({"map_logits": logits})}
    loss = model.weak_loss(out, {"label": torch.tensor([1])})
    loss.backward()
    touched = (logits.grad[0].abs().sum(0) > 0).sum().item()
    assert touched == math.ceil(model.k * 16) < 16            # its top cells only (k of 16)


def test_mil_soft_top_k_by_hand():
    """Soft top-k: the softmax of the standardized logits (sharpness r) weighs the logits."""
    from dolos_core.models.patches_mil import pool_logits

    d = torch.tensor([[[2.0, -1.0], [0.0, -3.0]]])
    v = [2.0, -1.0, 0.0, -3.0]
    mean = sum(v) / 4
    std = math.sqrt(sum((x - mean) ** 2 for x in v) / 4)
    w = [math.exp(3.0 * (x - mean) / std) for x in v]
    expected = sum(wi * x for wi, x in zip(w, v)) / sum(w)
    assert pool_logits(d, "softk", r=3.0).item() == pytest.approx(expected, rel=1e-5)
    assert pool_logits(d, "softk", r=0.0).item() == pytest.approx(mean, abs=1e-6)       # r = 0: the mean
    assert pool_logits(d, "softk", r=50.0).item() == pytest.approx(2.0, abs=1e-3)       # large r: the max


def test_mil_ranking_margin_and_suppression_by_hand():
    """A toy batch of two fakes and one real, 2x2 cell logits: the ranking margin, the
    suppression of the real image's top cells and the sparsity term, each against its value
    computed by hand, and the weighed sum the loss adds to the pooled BCE."""
    import torch.nn.functional as F

    from dolos_core.models.patches_mil import rank_term, sparsity_term, suppress_term

    d = torch.tensor([[[2.0, 0.0], [0.0, 0.0]],      # fake 1
                      [[0.5, 0.0], [0.0, 0.0]],      # fake 2
                      [[1.0, -2.0], [0.0, -1.0]]])   # real
    label = torch.tensor([1.0, 1.0, 0.0])
    score = torch.tensor([2.0, 0.5, 1.0])           # e.g. max pooling
    # pairs (fake, real): max(0, 1 - (2.0 - 1.0)) = 0; max(0, 1 - (0.5 - 1.0)) = 1.5 -> mean 0.75
    assert rank_term(d, score, label, k=0.5).item() == pytest.approx(0.75)
    # real's top 2 of 4 cells (k = 0.5): 1.0 and 0.0 -> mean(softplus) = (log(1 + e) + log 2) / 2
    assert suppress_term(d, score, label, k=0.5).item() == pytest.approx((math.log(1 + math.e) + math.log(2)) / 2)
    # top 1 cell (k = 0.25): softplus(1.0)
    assert suppress_term(d, score, label, k=0.25).item() == pytest.approx(math.log(1 + math.e))
    # sparsity: mean sigmoid over the 8 cells of the two fakes
    sig = lambda x: 1 / (1 + math.exp(-x))                                          # noqa: E731
    assert sparsity_term(d, score, label, k=0.5).item() == pytest.approx((sig(2.0) + sig(0.5) + 6 * 0.5) / 8)
    # a batch of one class: no pair, no real image -> 0
    assert rank_term(d[:2], score[:2], label[:2], 0.5).item() == 0
    assert suppress_term(d[:2], score[:2], label[:2], 0.5).item() == 0
    # the model's weak loss: pooled BCE + rank + suppress (weights 1), pooling max, k 0.5
    model = build_model("patches-mil", "weak", weak_init="pytorch", pooling="max", k=0.5, rank=1.0, suppress=1.0)
    logits = torch.stack([torch.zeros_like(d), d], 1)           # fake-minus-real logit = d
    out = {"map_logits": logits, "score": model.image_logit({"map_logits": logits})}
    bce = F.binary_cross_entropy_with_logits(score, label).item()
    got = model.weak_loss(out, {"label": label.long()}).item()
    assert got == pytest.approx(bce + 0.75 + (math.log(1 + math.e) + math.log(2)) / 2, rel=1e-5)


def test_mil_terms_are_card_options_with_checked_values():
    """The pooling, k and the terms' weights are options on Patches-MIL's card: a profile sets
    them per method, a value the card does not declare is refused, Patches has none of them."""
    from dolos_core.config import ConfigError, get_profile

    mini = get_profile("mini", method_options={"patches-mil": {"pooling": "softk", "rank": 1.0}})
    opts = mini.options_for("patches-mil", "weak")
    assert opts["pooling"] == "softk" and opts["rank"] == 1.0 and opts["weak_init"] == "pytorch"
    assert build_model("patches-mil", "weak", **opts).pooling == "softk"
    with pytest.raises(ConfigError, match="must be one of"):
        get_profile("mini", method_options={"patches-mil": {"k": 0.3}})
    with pytest.raises(ConfigError, match="declares no option 'pooling'"):
        get_profile("mini", method_options={"patches": {"pooling": "max"}})
