"""StyleGAN2-ADA losses: small pure functions plus `StyleGAN2Loss`, which runs one phase.

Written from Karras et al. 2020a/2020b (docs/ENGINE.md, "Training losses and regularisation"):
non-saturating logistic loss, lazy R1 on reals, path-length regularisation with an EMA
target, per-sample style mixing, and the Adam adjustment for lazy regularisation.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F

from .conv_autograd import penalty_graph

PHASES = ("Gmain", "Greg", "Gboth", "Dmain", "Dreg", "Dboth")


def g_nonsaturating_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Mean of softplus(-D(G(z))): G wants D to call its images real."""
    return F.softplus(-fake_logits).mean()


def d_fake_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    return F.softplus(fake_logits).mean()


def d_real_loss(real_logits: torch.Tensor) -> torch.Tensor:
    return F.softplus(-real_logits).mean()


def d_logistic_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """mean softplus(D(fake)) + mean softplus(-D(real))."""
    return d_fake_loss(fake_logits) + d_real_loss(real_logits)


def r1_penalty(real_img: torch.Tensor, real_logits: torch.Tensor) -> torch.Tensor:
    """Per-sample |d sum(D) / d real_img[n]|^2, shape [N]; R1 is gamma / 2 times this.

    `real_img` must be the tensor *before* augmentation (it requires grad) and
    `real_logits` must come from it. create_graph=True so the penalty trains D.
    """
    (grad,) = torch.autograd.grad(real_logits.sum(), real_img, create_graph=True)
    return grad.square().sum(dim=tuple(range(1, grad.ndim)))


def path_length(img: torch.Tensor, ws: torch.Tensor, pl_noise: torch.Tensor) -> torch.Tensor:
    """Per-sample sqrt(mean over ws of sum over w_dim of (d (img . y) / d w)^2), shape [N].

    `pl_noise` is y ~ N(0, 1) / sqrt(H * W); the length is a random projection of the
    Jacobian of the synthesis, so its expectation measures how much the image moves per
    unit step in W.
    """
    (grad,) = torch.autograd.grad((img * pl_noise).sum(), ws, create_graph=True)
    return grad.square().sum(dim=2).mean(dim=1).sqrt()


def pl_penalty(lengths: torch.Tensor, pl_mean: torch.Tensor) -> torch.Tensor:
    """Per-sample (len - pl_mean)^2: push every Jacobian towards the same length."""
    return (lengths - pl_mean).square()


def path_length_loss(
    lengths: torch.Tensor, pl_mean: torch.Tensor, decay: float, weight: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, per-sample penalty, new running mean) of path-length regularisation.

    The new mean m = lerp(pl_mean, mean(len), decay) stays in the graph for the penalty
    (len - m)^2, so the gradient also flows through decay * mean(len); only the stored buffer
    is detached (docs/ENGINE.md, "Training losses and regularisation"). loss = weight * mean.
    """
    m = pl_mean.to(device=lengths.device, dtype=torch.float32).lerp(lengths.float().mean(), decay)
    penalty = pl_penalty(lengths, m.to(lengths.dtype))
    return penalty.mean() * weight, penalty, m.detach()


def style_mix(
    G_mapping: Callable[..., torch.Tensor], z: torch.Tensor, c: torch.Tensor, ws: torch.Tensor, prob: float
) -> torch.Tensor:
    """With probability `prob` per sample, take the ws from layer `cutoff` on from a second z.

    `cutoff` is uniform in [1, num_ws). Mixing stops the network from assuming that
    adjacent layers' styles are correlated (Karras et al. 2019, section 3.1).
    """
    n, num_ws = ws.shape[:2]
    if prob <= 0 or num_ws < 2:
        return ws
    cutoff = torch.randint(1, num_ws, (n,), device=ws.device)
    mixed = torch.rand(n, device=ws.device) < prob
    cutoff = torch.where(mixed, cutoff, torch.full_like(cutoff, num_ws))
    other = G_mapping(torch.randn_like(z), c, update_emas=False)
    from_other = torch.arange(num_ws, device=ws.device)[None, :] >= cutoff[:, None]
    return torch.where(from_other[:, :, None], other, ws)


def join_by_groups(a: torch.Tensor, b: torch.Tensor, group_size: int) -> torch.Tensor:
    """Two batches of N as one of 2N whose minibatch-stddev groups are each all-`a` or all-`b`.

    mbstd (group size G) puts sample i with samples i + k * (N / G). Splitting each batch into
    G blocks of M = N / G and laying the blocks out as a0 b0 a1 b1 ... keeps that rule: in the
    joint batch (block 2M) sample j < M of block k is a[k * M + j] and its group-mates are the
    same j of the other blocks, exactly a's group; likewise for b. So D(join) = D(a), D(b).
    """
    if a.shape != b.shape or a.shape[0] % group_size:
        raise ValueError(f"join_by_groups: batches {tuple(a.shape)} and {tuple(b.shape)} do not split "
                         f"into groups of {group_size} alike")
    g, m = group_size, a.shape[0] // group_size  # explicit sizes: c may have zero columns
    blocks = torch.stack([a.reshape(g, m, *a.shape[1:]), b.reshape(g, m, *b.shape[1:])], dim=1)
    return blocks.reshape(2 * a.shape[0], *a.shape[1:])


def split_by_groups(x: torch.Tensor, group_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The inverse of `join_by_groups`: (a, b) back from the joint batch (or its per-sample outputs)."""
    n = x.shape[0] // 2
    blocks = x.reshape(group_size, 2, n // group_size, *x.shape[1:])
    return blocks[:, 0].reshape(n, *x.shape[1:]), blocks[:, 1].reshape(n, *x.shape[1:])


def lazy_regularization(lr: float, betas: tuple[float, float], interval: int | None) -> tuple[float, tuple]:
    """Adam settings for a network whose regulariser runs every `interval` steps.

    Its optimizer steps interval + 1 times per interval minibatches, so lr and the
    momentum horizon are rescaled by c = interval / (interval + 1). No interval: unchanged.
    """
    if not interval:
        return lr, tuple(betas)
    c = interval / (interval + 1)
    return lr * c, tuple(b**c for b in betas)


@contextlib.contextmanager
def frozen(module: torch.nn.Module) -> Iterator[None]:
    """Turn off requires_grad on `module` and restore each parameter's flag afterwards."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def _module_device(module: torch.nn.Module) -> torch.device:
    for tensor in module.parameters():
        return tensor.device
    return torch.device("cpu")


class StyleGAN2Loss:
    """Runs one training phase: computes its terms, calls .backward(), returns stats.

    The caller owns the optimizers and zeroes gradients. Every term is multiplied by
    `gain` (the loop passes the lazy interval for the reg phases, 1 otherwise).
    Every phase that runs D on reals (main and R1) reports `real_sign_sum`/`real_count` for ADA.
    Not an nn.Module on purpose: its state is only `pl_mean`, never G or D.
    """

    def __init__(
        self, G: torch.nn.Module, D: torch.nn.Module, augment_pipe: torch.nn.Module | None = None,
        r1_gamma: float = 10, style_mixing_prob: float = 0.9, pl_weight: float = 2.0,
        pl_batch_shrink: int = 2, pl_decay: float = 0.01, joint_d_main: bool = True,
        penalty_convs: bool = True,
    ) -> None:
        if pl_batch_shrink < 1:
            raise ValueError(f"pl_batch_shrink must be >= 1, got {pl_batch_shrink}")
        self.G, self.D, self.augment_pipe = G, D, augment_pipe
        self.r1_gamma, self.style_mixing_prob = r1_gamma, style_mixing_prob
        self.pl_weight, self.pl_batch_shrink, self.pl_decay = pl_weight, pl_batch_shrink, pl_decay
        # D's main phase on fakes and reals in one call (one forward, one backward, batch 2N)
        # where the mbstd groups allow it (`join_by_groups`); the same numbers, fewer calls.
        self.joint_d_main = joint_d_main
        # The penalties' forward passes make their convs with a first-order double backward
        # (`conv_autograd.penalty_graph`); the same gradients to float rounding, fewer and larger
        # kernels. False keeps torch's own conv autograd (the comparison the tests make).
        self.penalty_convs = penalty_convs
        self.pl_mean = torch.zeros([], device=_module_device(G))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"pl_mean": self.pl_mean.detach().clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if set(state) != {"pl_mean"}:
            raise ValueError(f"StyleGAN2Loss state must hold exactly 'pl_mean', got {sorted(state)}")
        self.pl_mean = (torch.as_tensor(state["pl_mean"], dtype=torch.float32)
                        .to(self.pl_mean.device).reshape([]))

    def _penalty_scope(self) -> contextlib.AbstractContextManager:
        """The forward pass of a gradient penalty: its first backward wants no weight gradients."""
        return penalty_graph() if self.penalty_convs else contextlib.nullcontext()

    def run_G(self, z: torch.Tensor, c: torch.Tensor):
        """(img, ws) with style mixing and random noise, as in training.

        Every phase's mapping call moves w_avg (the truncation centre) while G trains: the G,
        path-length and D phases alike; only style mixing's second draw does not."""
        ws = self.G.mapping(z, c, update_emas=self.G.training)
        ws = style_mix(self.G.mapping, z, c, ws, self.style_mixing_prob)
        return self.G.synthesis(ws, noise_mode="random"), ws

    def run_D(self, img: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        if self.augment_pipe is not None:
            img = self.augment_pipe(img)
        return self.D(img, c)

    def accumulate_gradients(
        self, phase: str, real_img: torch.Tensor, real_c: torch.Tensor,
        gen_z: torch.Tensor, gen_c: torch.Tensor, gain: float,
    ) -> dict[str, float]:
        """Run `phase` (one of PHASES) and backpropagate; returns the terms as floats.

        Keys, by phase: G main -> loss_G, scores_fake; G reg -> pl_length, pl_penalty,
        pl_mean, loss_Gpl; D main -> loss_D_fake, loss_D_real, loss_D, scores_fake,
        scores_real, real_sign_sum, real_count; D reg -> r1_penalty, loss_Dr1, real_sign_sum,
        real_count.
        """
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}; expected one of {', '.join(PHASES)}")
        stats: dict[str, float] = {}
        if phase.startswith("G"):
            with frozen(self.D):  # G's loss must not leave gradients on D
                if phase in ("Gmain", "Gboth"):
                    stats.update(self._g_main(gen_z, gen_c, gain))
                if phase in ("Greg", "Gboth") and self.pl_weight != 0:
                    stats.update(self._g_path_length(gen_z, gen_c, gain))
            return stats
        do_main = phase in ("Dmain", "Dboth")
        do_r1 = phase in ("Dreg", "Dboth") and self.r1_gamma != 0
        group_size = self._joint_group_size(real_img, gen_z) if do_main and not do_r1 else None
        if group_size is not None:
            return self._d_main_joint(real_img, real_c, gen_z, gen_c, gain, group_size)
        if do_main:
            stats.update(self._d_fake(gen_z, gen_c, gain))
        if do_main or do_r1:
            stats.update(self._d_real(real_img, real_c, gain, do_main, do_r1))
        if do_main:
            stats["loss_D"] = stats["loss_D_fake"] + stats["loss_D_real"]
        return stats

    def _g_main(self, gen_z: torch.Tensor, gen_c: torch.Tensor, gain: float) -> dict[str, float]:
        img, _ = self.run_G(gen_z, gen_c)
        logits = self.run_D(img, gen_c)
        loss = g_nonsaturating_loss(logits)
        (loss * gain).backward()
        return {"loss_G": loss.item(), "scores_fake": logits.detach().mean().item()}

    def _g_path_length(self, gen_z: torch.Tensor, gen_c: torch.Tensor, gain: float) -> dict[str, float]:
        n = max(gen_z.shape[0] // self.pl_batch_shrink, 1)
        with self._penalty_scope():
            img, ws = self.run_G(gen_z[:n], gen_c[:n])
        pl_noise = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
        lengths = path_length(img, ws, pl_noise)
        loss, penalty, self.pl_mean = path_length_loss(lengths, self.pl_mean, self.pl_decay, self.pl_weight)
        (loss * gain).backward()
        return {
            "pl_length": lengths.detach().mean().item(),
            "pl_penalty": penalty.detach().mean().item(),
            "pl_mean": self.pl_mean.item(),
            "loss_Gpl": loss.item(),
        }

    def _d_fake(self, gen_z: torch.Tensor, gen_c: torch.Tensor, gain: float) -> dict[str, float]:
        with torch.no_grad():  # D's step never trains G
            img, _ = self.run_G(gen_z, gen_c)
        logits = self.run_D(img, gen_c)
        loss = d_fake_loss(logits)
        (loss * gain).backward()
        return {"loss_D_fake": loss.item(), "scores_fake": logits.detach().mean().item()}

    def _joint_group_size(self, real_img: torch.Tensor, gen_z: torch.Tensor) -> int | None:
        """mbstd's group size if fakes and reals can share one D call, else None.

        Separate calls on N samples use groups of min(size, N); a joint call on 2N uses
        min(size, 2N): the same only when N >= size (and N must split into such groups)."""
        size = getattr(getattr(self.D, "config", None), "mbstd_group_size", None)
        n = real_img.shape[0]
        if not self.joint_d_main or not size or gen_z.shape[0] != n or n < size or n % size:
            return None
        return size

    def _d_main_joint(
        self, real_img: torch.Tensor, real_c: torch.Tensor, gen_z: torch.Tensor, gen_c: torch.Tensor,
        gain: float, group_size: int,
    ) -> dict[str, float]:
        """D main on fakes and reals in one forward and backward. The draws come in the order of
        the separate calls (G's noise, the fakes' augmentation, then the reals')."""
        with torch.no_grad():
            fake, _ = self.run_G(gen_z, gen_c)
        if self.augment_pipe is not None:
            fake, real = self.augment_pipe(fake), self.augment_pipe(real_img.detach())
        else:
            real = real_img.detach()
        img = join_by_groups(fake, real.to(fake.dtype), group_size)
        c = join_by_groups(gen_c, real_c, group_size)
        fake_logits, real_logits = split_by_groups(self.D(img, c), group_size)
        loss_fake, loss_real = d_fake_loss(fake_logits), d_real_loss(real_logits)
        ((loss_fake + loss_real) * gain).backward()
        signs = real_logits.detach().sign()
        return {
            "loss_D_fake": loss_fake.item(), "scores_fake": fake_logits.detach().mean().item(),
            "real_sign_sum": signs.sum().item(), "real_count": float(signs.numel()),
            "loss_D_real": loss_real.item(), "scores_real": real_logits.detach().mean().item(),
            "loss_D": loss_fake.item() + loss_real.item(),
        }

    def _d_real(
        self, real_img: torch.Tensor, real_c: torch.Tensor, gain: float, do_main: bool, do_r1: bool
    ) -> dict[str, float]:
        # R1 differentiates w.r.t. the real image *before* augmentation.
        real = real_img.detach().requires_grad_(do_r1)
        with self._penalty_scope() if do_r1 else contextlib.nullcontext():
            logits = self.run_D(real, real_c)
        total = logits.new_zeros([])
        stats: dict[str, float] = {}
        # ADA's r_t counts every real logit D produced, the R1 phase's included.
        signs = logits.detach().sign()
        stats.update(real_sign_sum=signs.sum().item(), real_count=float(signs.numel()))
        if do_main:
            loss_real = d_real_loss(logits)
            total = total + loss_real
            stats.update(loss_D_real=loss_real.item(), scores_real=logits.detach().mean().item())
        if do_r1:
            penalty = r1_penalty(real, logits)
            loss_r1 = penalty.mean() * (self.r1_gamma / 2)
            total = total + loss_r1
            stats.update(r1_penalty=penalty.detach().mean().item(), loss_Dr1=loss_r1.item())
        (total * gain).backward()
        return stats
