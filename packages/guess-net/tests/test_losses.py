"""Guess-net's losses (focal loss in both forms and the source's gamma ramp, the VAE objective,
GE2E) and the AUROC, against values worked out by hand with plain ``math``."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from guess_net.losses import (
    GE2ELoss,
    VAELoss,
    focal_loss,
    group_embeddings_by_class,
    normalised_focal_loss,
    ramped_gamma,
    vae_loss,
)
from guess_net.metrics import auroc

LN3 = math.log(3.0)

# p_true = 0.75 (target 1 of logits [0, ln 3]) and 0.5 (target 0 of logits [0, 0]).
LOGITS = torch.tensor([[0.0, LN3], [0.0, 0.0]])
TARGETS = torch.tensor([1, 0])


def close(actual: torch.Tensor, expected, tol: float = 1e-6) -> None:
    expected = torch.as_tensor(expected, dtype=actual.dtype)
    torch.testing.assert_close(actual.detach(), expected, rtol=tol, atol=tol)


def assert_useful_grad(tensor: torch.Tensor) -> None:
    assert tensor.grad is not None
    assert torch.isfinite(tensor.grad).all()
    assert tensor.grad.abs().sum() > 0


# --- focal loss, Lin et al.'s form and the source's ------------------------------------------


def test_focal_loss_matches_hand_values():
    # softmax(0, ln 3) = (1/4, 3/4): p_t = 3/4 for target 1 and 1/4 for target 0.
    logits = torch.tensor([[0.0, LN3], [0.0, LN3]], dtype=torch.float64)
    targets = torch.tensor([1, 0])
    easy = -0.25 * 0.25**2 * math.log(0.75)
    hard = -0.25 * 0.75**2 * math.log(0.25)
    close(focal_loss(logits, targets, reduction="none"), [easy, hard])
    close(focal_loss(logits, targets, reduction="sum"), easy + hard)
    close(focal_loss(logits, targets), (easy + hard) / 2)


def test_focal_loss_per_class_alpha_and_gamma_one():
    logits = torch.tensor([[0.0, LN3], [0.0, LN3]], dtype=torch.float64)
    targets = torch.tensor([1, 0])
    alpha = torch.tensor([0.1, 0.9])  # float32 weights are cast to the logits' dtype
    expected = [-0.9 * 0.25 * math.log(0.75), -0.1 * 0.75 * math.log(0.25)]
    loss = focal_loss(logits, targets, alpha=alpha, gamma=1.0, reduction="none")
    assert loss.dtype == torch.float64
    close(loss, expected)


def test_focal_loss_without_focusing_or_weighting_is_cross_entropy():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 4, generator=generator, dtype=torch.float64)
    targets = torch.tensor([0, 3, 1, 1, 2])
    close(focal_loss(logits, targets, alpha=None, gamma=0.0), F.cross_entropy(logits, targets))


def test_focal_loss_gradient_flows():
    logits = torch.tensor([[0.0, LN3], [2.0, -1.0]], requires_grad=True)
    focal_loss(logits, torch.tensor([1, 1])).backward()
    assert_useful_grad(logits)


def test_focal_loss_rejects_bad_arguments():
    logits, targets = torch.zeros(2, 3), torch.tensor([0, 1])
    with pytest.raises(ValueError, match="gamma"):
        focal_loss(logits, targets, gamma=-1.0)
    for alpha in (-0.1, 1.5):
        with pytest.raises(ValueError, match="alpha"):
            focal_loss(logits, targets, alpha=alpha)
    with pytest.raises(ValueError, match="alpha"):
        focal_loss(logits, targets, alpha=torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError, match="alpha"):
        focal_loss(logits, targets, alpha=torch.tensor([0.5, 0.5, 2.0]))
    with pytest.raises(ValueError, match="class targets"):
        focal_loss(logits, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="reduction"):
        focal_loss(logits, targets, reduction="batchmean")


def test_source_focal_is_the_normalised_weighted_mean_of_cross_entropy() -> None:
    w1, w2 = 0.25**2, 0.5**2
    expected = (w1 * -math.log(0.75) + w2 * -math.log(0.5)) / (w1 + w2)
    assert normalised_focal_loss(LOGITS, TARGETS, gamma=2.0).item() == pytest.approx(expected)


def test_lin_focal_has_alpha_and_no_normalisation() -> None:
    expected = 0.25 * (0.25**2 * -math.log(0.75) + 0.5**2 * -math.log(0.5)) / 2
    value = focal_loss(LOGITS, TARGETS, alpha=0.25, gamma=2.0).item()
    assert value == pytest.approx(expected)
    # The forms differ by alpha and the normaliser: source = lin(alpha=None) * N / sum(w).
    unweighted = focal_loss(LOGITS, TARGETS, alpha=None, gamma=2.0).item()
    source = normalised_focal_loss(LOGITS, TARGETS, gamma=2.0).item()
    assert source == pytest.approx(unweighted * 2 / (0.25**2 + 0.5**2))


def test_source_focal_at_gamma_zero_is_cross_entropy() -> None:
    logits, targets = torch.randn(32, 10), torch.randint(0, 10, (32,))
    value = normalised_focal_loss(logits, targets, gamma=0.0)
    torch.testing.assert_close(value, F.cross_entropy(logits, targets))


def test_source_focal_treats_its_weights_as_constants() -> None:
    logits = torch.randn(8, 10, requires_grad=True)
    targets = torch.randint(0, 10, (8,))
    normalised_focal_loss(logits, targets, gamma=2.0).backward()
    with torch.no_grad():
        p_true = F.softmax(logits, 1).gather(1, targets[:, None]).squeeze(1)
        weights = (1 - p_true) ** 2
    reference = logits.detach().clone().requires_grad_()
    (
        F.cross_entropy(reference, targets, reduction="none") * weights / weights.sum()
    ).sum().backward()
    torch.testing.assert_close(logits.grad, reference.grad)


def test_gamma_ramp_is_half_way_at_three_fifths_and_rises() -> None:
    epochs = 10  # centre 3/5 * 10 - 1 = epoch 5
    assert ramped_gamma(2.0, 5, epochs) == pytest.approx(1.0)
    values = [ramped_gamma(2.0, e, epochs) for e in range(epochs)]
    assert all(a < b for a, b in zip(values, values[1:], strict=False))
    assert values[0] == pytest.approx(2 / (1 + math.exp(1.0)))


# --- VAE -------------------------------------------------------------------------------------

# Sample 0: BCE of recon (0.5, 0.8) against x (1, 0) is -ln 0.5 - ln 0.2; squared error is
# 0.25 + 0.64. KL with mu (1, 0), logvar (0, ln 2): -0.5 * [(1 + 0 - 1 - 1) + (1 + ln 2 - 0 - 2)].
# Sample 1 is the "perfect" one: recon == x, so BCE and squared error are 0, and mu = logvar = 0.
VAE_RECON = [[0.5, 0.8], [1.0, 0.0]]
VAE_X = [[1.0, 0.0], [1.0, 0.0]]
VAE_MU = [[1.0, 0.0], [0.0, 0.0]]
VAE_LOGVAR = [[0.0, math.log(2.0)], [0.0, 0.0]]
BCE_0 = -math.log(0.5) - math.log(0.2)
KL_0 = 1.0 - 0.5 * math.log(2.0)


def vae_inputs(requires_grad: bool = False):
    return [
        torch.tensor(values, dtype=torch.float64, requires_grad=requires_grad)
        for values in (VAE_RECON, VAE_X, VAE_MU, VAE_LOGVAR)
    ]


def test_vae_loss_bce_matches_hand_values_for_every_reduction():
    recon, x, mu, logvar = vae_inputs()
    per_sample = vae_loss(recon, x, mu, logvar, kl_weight=0.5, reduction="none")
    assert isinstance(per_sample, VAELoss)
    close(per_sample.reconstruction, [BCE_0, 0.0])
    close(per_sample.kl, [KL_0, 0.0])
    close(per_sample.total, [BCE_0 + 0.5 * KL_0, 0.0])

    summed = vae_loss(recon, x, mu, logvar, kl_weight=0.5, reduction="sum")
    close(summed.total, BCE_0 + 0.5 * KL_0)
    total, reconstruction, kl = vae_loss(recon, x, mu, logvar)
    close(total, (BCE_0 + KL_0) / 2)
    close(reconstruction, BCE_0 / 2)
    close(kl, KL_0 / 2)


def test_vae_loss_mse_and_logits_variants():
    recon, x, mu, logvar = vae_inputs()
    mse = vae_loss(recon, x, mu, logvar, reconstruction="mse", reduction="none")
    close(mse.reconstruction, [0.25 + 0.64, 0.0])

    # logit(0.5) = 0 and logit(0.8) = ln 4 give the same BCE as the probabilities.
    recon_logits = torch.tensor([[0.0, math.log(4.0)]], dtype=torch.float64)
    from_logits = vae_loss(recon_logits, x[:1], mu[:1], logvar[:1], recon_is_logits=True)
    close(from_logits.reconstruction, BCE_0)


def test_vae_loss_gradients_reach_recon_mu_and_logvar():
    recon, x, mu, logvar = vae_inputs(requires_grad=True)
    vae_loss(recon, x.detach(), mu, logvar).total.backward()
    for tensor in (recon, mu, logvar):
        assert_useful_grad(tensor)


def test_vae_loss_rejects_bad_arguments():
    recon, x, mu, logvar = vae_inputs()
    with pytest.raises(ValueError, match="reconstruction"):
        vae_loss(recon, x, mu, logvar, reconstruction="l1")
    with pytest.raises(ValueError, match="kl_weight"):
        vae_loss(recon, x, mu, logvar, kl_weight=-1.0)
    with pytest.raises(ValueError, match="recon_is_logits"):
        vae_loss(recon, x, mu, logvar, reconstruction="mse", recon_is_logits=True)
    with pytest.raises(ValueError, match="recon shape"):
        vae_loss(recon[:, :1], x, mu, logvar)
    with pytest.raises(ValueError, match="mu"):
        vae_loss(recon, x, mu[:1], logvar[:1])
    with pytest.raises(ValueError, match="reduction"):
        vae_loss(recon, x, mu, logvar, reduction="mean_per_pixel")


# --- GE2E ------------------------------------------------------------------------------------

# N=2 classes, M=2 embeddings, D=2. Class 0: (1, 0), (1, 1). Class 1: (0, 1), (-1, 2).
# Full centroids: c_0 = (1, 0.5), c_1 = (-0.5, 1.5). For its own class each embedding is
# compared with the centroid of the *other* M-1 = 1 embedding, i.e. that embedding itself.
GE2E_EMBEDDINGS = [[[1.0, 0.0], [1.0, 1.0]], [[0.0, 1.0], [-1.0, 2.0]]]
W, B = 10.0, -5.0


def cos(u: tuple[float, float], v: tuple[float, float]) -> float:
    return (u[0] * v[0] + u[1] * v[1]) / (math.hypot(*u) * math.hypot(*v))


# HAND_COS[j][i][k] = cos(e_ji, c_k), with c_j replaced by the leave-e_ji-out centroid.
HAND_COS = [
    [
        [cos((1, 0), (1, 1)), cos((1, 0), (-0.5, 1.5))],
        [cos((1, 1), (1, 0)), cos((1, 1), (-0.5, 1.5))],
    ],
    [
        [cos((0, 1), (1, 0.5)), cos((0, 1), (-1, 2))],
        [cos((-1, 2), (1, 0.5)), cos((-1, 2), (0, 1))],
    ],
]
HAND_S = [[[W * c + B for c in row] for row in rows] for rows in HAND_COS]


def sigmoid(value: float) -> float:
    return 1.0 / (1.0 + math.exp(-value))


def ge2e_embeddings(requires_grad: bool = False) -> torch.Tensor:
    return torch.tensor(GE2E_EMBEDDINGS, dtype=torch.float64, requires_grad=requires_grad)


def test_ge2e_similarity_uses_leave_one_out_own_centroid():
    similarity = GE2ELoss().similarity(ge2e_embeddings())
    assert similarity.shape == (2, 2, 2)
    close(similarity, HAND_S, tol=1e-5)
    # The full class-0 centroid would give cos((1, 0), (1, 0.5)) = 2/sqrt(5), not 1/sqrt(2).
    assert abs(similarity[0, 0, 0].item() - (W * 2 / math.sqrt(5) + B)) > 0.5


def test_ge2e_softmax_loss_matches_hand_values():
    expected = [
        [-s[j] + math.log(sum(math.exp(v) for v in s)) for s in rows]
        for j, rows in enumerate(HAND_S)
    ]
    embeddings = ge2e_embeddings()
    close(GE2ELoss(reduction="none")(embeddings), expected, tol=1e-5)
    close(GE2ELoss(reduction="sum")(embeddings), sum(map(sum, expected)), tol=1e-5)
    close(GE2ELoss()(embeddings), sum(map(sum, expected)) / 4, tol=1e-5)


def test_ge2e_contrast_loss_matches_hand_values():
    # With N=2 the max over k != j is just the one other class.
    expected = [
        [1 - sigmoid(s[j]) + sigmoid(s[1 - j]) for s in rows] for j, rows in enumerate(HAND_S)
    ]
    loss = GE2ELoss(loss_type="contrast", reduction="none")
    close(loss(ge2e_embeddings()), expected, tol=1e-5)


def test_ge2e_gradients_reach_embeddings_and_parameters():
    softmax_loss = GE2ELoss()
    embeddings = ge2e_embeddings(requires_grad=True)
    softmax_loss(embeddings).backward()
    assert_useful_grad(embeddings)
    assert_useful_grad(softmax_loss.w)
    # A shared offset b cancels inside the softmax, so it gets no gradient there.
    assert softmax_loss.b.grad.abs().item() < 1e-6

    contrast_loss = GE2ELoss(loss_type="contrast")
    contrast_loss(ge2e_embeddings()).backward()
    assert_useful_grad(contrast_loss.w)
    assert_useful_grad(contrast_loss.b)


def test_ge2e_scale_stays_positive_when_w_is_forced_negative():
    loss = GE2ELoss(min_w=1e-3)
    with torch.no_grad():
        loss.w.fill_(-3.0)
    similarity = loss.similarity(ge2e_embeddings())
    expected = [[[1e-3 * c + B for c in row] for row in rows] for rows in HAND_COS]
    close(similarity, expected, tol=1e-5)
    assert torch.isfinite(loss(ge2e_embeddings()))


def test_ge2e_rejects_bad_arguments():
    with pytest.raises(ValueError, match="init_w"):
        GE2ELoss(init_w=0.0)
    with pytest.raises(ValueError, match="min_w"):
        GE2ELoss(min_w=-1.0)
    with pytest.raises(ValueError, match="loss_type"):
        GE2ELoss(loss_type="triplet")
    with pytest.raises(ValueError, match="reduction"):
        GE2ELoss(reduction="max")
    loss = GE2ELoss()
    with pytest.raises(ValueError, match="M=1"):
        loss(torch.ones(3, 1, 4))
    with pytest.raises(ValueError, match="N=1"):
        loss(torch.ones(1, 3, 4))
    with pytest.raises(ValueError, match="embeddings must be"):
        loss(torch.ones(6, 4))


def test_group_embeddings_by_class_keeps_first_m_of_each_usable_class():
    # Counts: class 0 -> 2, class 1 -> 1 (dropped), class 2 -> 3, class 3 -> 1 (dropped); M = 2.
    labels = torch.tensor([2, 0, 2, 1, 0, 2, 3])
    embeddings = torch.arange(14.0).reshape(7, 2).requires_grad_()
    grouped = group_embeddings_by_class(embeddings, labels)
    expected = [[[2.0, 3.0], [8.0, 9.0]], [[0.0, 1.0], [4.0, 5.0]]]
    close(grouped, expected)
    grouped.sum().backward()
    close(embeddings.grad, [[1, 1], [1, 1], [1, 1], [0, 0], [1, 1], [0, 0], [0, 0]])


def test_group_embeddings_by_class_rejects_unusable_batches():
    with pytest.raises(ValueError, match="at least 2 classes"):
        group_embeddings_by_class(torch.zeros(4, 2), torch.tensor([0, 0, 0, 1]))
    with pytest.raises(ValueError, match="labels"):
        group_embeddings_by_class(torch.zeros(4, 2), torch.tensor([0, 0, 1]))


# --- AUROC -----------------------------------------------------------------------------------


def test_auroc_counts_ties_as_half() -> None:
    positives = torch.tensor([1, 1, 0, 0])
    assert auroc(torch.tensor([0.9, 0.8, 0.1, 0.2]), positives) == 1.0
    assert auroc(torch.tensor([0.1, 0.2, 0.9, 0.8]), positives) == 0.0
    # Pairs (pos, neg): (0.5, 0.5) tie, (0.5, 0.1) win, (0.7, 0.5) win, (0.7, 0.1) win.
    assert auroc(torch.tensor([0.5, 0.7, 0.5, 0.1]), positives) == pytest.approx(3.5 / 4)
    assert math.isnan(auroc(torch.tensor([0.3, 0.4]), torch.tensor([1, 1])))
