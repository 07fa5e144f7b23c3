"""Trains easel's embedded tiny SD 1.x model from scratch on scenes drawn by data.py (what
`make train-tiny` runs). Budget: at most 2 hours on a quiet 2-core machine, CPU only.

    /usr/bin/python3 tools/train/train_tiny.py                  # full run into build/train-tiny
    /usr/bin/python3 tools/train/train_tiny.py --quick          # smoke run, a few minutes
    /usr/bin/python3 tools/train/train_tiny.py --benchmark      # samples/s of both stages, then exit

Stages (each resumes from its checkpoint in --out if one is there; --fresh ignores them):
  1. VAE: AutoencoderKL (4x downsampling, 32x32 -> 4x8x8) on freshly drawn scenes; loss = MSE + L1 +
     edge (finite-difference) L1 + LDM's KL weight; PSNR on a fixed held-out batch; stops at
     --vae-target-psnr, --vae-steps or --vae-minutes, whichever comes first.
  1b. Decoder: the decoder (and post_quant_conv) alone, encoder frozen, for --decoder-minutes: the
     latents, and so stages 2-3, do not change, while the pictures get sharper (on 2,000 random scenes:
     34.2 -> 41.3 dB, shapes read right from the reconstruction 81% -> 92%, in 12 minutes).
  2. Latents: --latent-count scenes encoded once by the frozen VAE (posterior mean and std kept, a
     fresh posterior sample is drawn each time a latent is used); scaling_factor = 1 / their std,
     the way SD's 0.18215 was chosen.
  3. Text encoder (CLIPTextModel) + UNet2DConditionModel trained jointly, eps-prediction on SD 1.x's
     scaled-linear schedule (0.00085 -> 0.012, 1000 steps), caption dropout (empty caption) for
     classifier-free guidance, EMA of the weights; stops at --unet-steps or --unet-minutes. 30% of each
     batch's timesteps come from t >= 700 and each sample's eps-MSE is weighted by min(1/alphabar_t, 50)
     (--high-t-fraction, --high-noise-weight): without both, the model never learns the position words
     (tools/train/README.md). --device cuda runs this stage on a GPU.
  4. Export (export.py): diffusers folder, LDM single file + yaml, reference generations.

Every run appends to <out>/train_log.csv (ISO time, elapsed seconds, stage, step, loss, lr, metric,
samples/s). Learning rates follow warm-up + cosine over progress = max(step/steps, time/budget):
with the step limits binding (a fast machine) a run is reproducible from --seed; when the time
limit binds, how far it got depends on the machine.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import math
import os
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description="Train easel's embedded tiny SD 1.x model.",
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--out", default=os.path.join(_HERE, "..", "..", "build", "train-tiny"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu",
                    help="torch device for stage 3 (e.g. cuda); the random draws stay on the CPU generators, so a "
                         "run samples the same batches on any device")
    ap.add_argument("--fresh", action="store_true", help="ignore existing checkpoints in --out")
    ap.add_argument("--quick", action="store_true", help="smoke run: a few minutes in all")
    ap.add_argument("--benchmark", action="store_true", help="measure samples/s of both stages and exit")
    ap.add_argument("--no-export", action="store_true", help="stop after training")
    ap.add_argument("--stop-after", choices=("vae", "latents"), default=None,
                    help="end the run after this stage (e.g. to inspect vae_recon.png first); a later run "
                         "resumes from the saved stage")
    g = ap.add_argument_group("stage 1: VAE")
    g.add_argument("--vae-minutes", type=float, default=35.0)
    g.add_argument("--vae-steps", type=int, default=12000)
    g.add_argument("--vae-batch", type=int, default=32)
    g.add_argument("--vae-channels", default=None, help="override block_out_channels, e.g. 16,32,64")
    g.add_argument("--vae-groups", type=int, default=None, help="override norm_num_groups")
    g.add_argument("--vae-lr", type=float, default=1e-3)
    g.add_argument("--vae-target-psnr", type=float, default=33.0, help="dB on the held-out batch")
    g.add_argument("--kl-weight", type=float, default=1e-6,
                   help="LDM's weight, relative to a reconstruction loss summed over pixels")
    g.add_argument("--edge-weight", type=float, default=0.5)
    g.add_argument("--vae-init-logvar", type=float, default=-6.0,
                   help="added to the initial posterior log-variance (quant_conv bias); 0 keeps diffusers' init")
    g = ap.add_argument_group("stage 1b: decoder")
    g.add_argument("--decoder-minutes", type=float, default=12.0,
                   help="further training of the decoder alone, encoder frozen (0: skip)")
    g.add_argument("--decoder-steps", type=int, default=6000)
    g.add_argument("--decoder-lr", type=float, default=5e-4)
    g = ap.add_argument_group("stage 2: latents")
    g.add_argument("--latent-count", type=int, default=40000)
    g = ap.add_argument_group("stage 3: text encoder + UNet")
    g.add_argument("--total-minutes", type=float, default=115.0,
                   help="whole run; stage 3 gets what stages 1-2 leave, less --export-reserve-minutes")
    g.add_argument("--export-reserve-minutes", type=float, default=5.0)
    g.add_argument("--unet-minutes", type=float, default=None, help="cap for stage 3 (default: the rest)")
    g.add_argument("--unet-steps", type=int, default=40000)
    g.add_argument("--unet-batch", type=int, default=64)
    g.add_argument("--unet-lr", type=float, default=5e-4)
    g.add_argument("--caption-dropout", type=float, default=0.1)
    g.add_argument("--ema", type=float, default=0.999)
    g.add_argument("--high-noise-weight", type=float, default=50.0, metavar="CAP",
                   help="experimental: weight each sample's eps-MSE by min(1/alphabar_t, CAP) (normalised to mean 1 "
                        "over t; CAP 214 = v-prediction's implied weighting), so the high-noise steps where only the "
                        "caption tells where the shape goes get more of the gradient; 0 = SD's plain eps-MSE")
    g.add_argument("--high-t-fraction", type=float, default=0.3, metavar="F",
                   help="experimental: draw this fraction of each batch's timesteps from t >= 700 (where the caption "
                        "alone says where the shape goes) instead of uniformly; 0 = SD's uniform draw")
    g.add_argument("--refine-minutes", type=float, default=20.0,
                   help="the last minutes of stage 3 train with SD's plain eps-MSE and uniform t (no high-noise "
                        "weighting or sampling), with their own warm-up and cosine from --refine-lr: the high-noise "
                        "recipe teaches the position words but starves the low-noise steps that draw the corners")
    g.add_argument("--refine-lr", type=float, default=2e-4)
    g = ap.add_argument_group("logging")
    g.add_argument("--log-every", type=int, default=50, help="steps")
    g.add_argument("--eval-every", type=int, default=250, help="VAE steps between PSNR checks")
    g.add_argument("--checkpoint-minutes", type=float, default=5.0)
    a = ap.parse_args(argv)
    if a.quick:
        a.vae_minutes, a.vae_steps = min(a.vae_minutes, 1.5), min(a.vae_steps, 400)
        a.decoder_minutes, a.decoder_steps = min(a.decoder_minutes, 0.5), min(a.decoder_steps, 100)
        a.latent_count = min(a.latent_count, 1024)
        a.unet_minutes, a.unet_steps = min(a.unet_minutes or 1.5, 1.5), min(a.unet_steps, 300)
        a.refine_minutes = min(a.refine_minutes, 0.5)
        a.eval_every, a.log_every = min(a.eval_every, 50), min(a.log_every, 10)
        if a.out == ap.get_default("out"):
            a.out = os.path.join(_HERE, "..", "..", "build", "train-tiny-quick")
    a.out = os.path.normpath(a.out)
    return a


class Logger:
    FIELDS = ("time", "elapsed_s", "stage", "step", "loss", "lr", "metric", "samples_per_s")

    def __init__(self, path: str):
        self.path = path
        self.t0 = time.time()
        new = not os.path.exists(path)
        self.f = open(path, "a", newline="")
        self.w = csv.writer(self.f)
        if new:
            self.w.writerow(self.FIELDS)

    def row(self, stage, step, loss="", lr="", metric="", rate="", note=""):
        now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        el = time.time() - self.t0
        fmt = lambda v, f: (f % v) if isinstance(v, float) else v  # noqa: E731
        self.w.writerow([now, f"{el:.1f}", stage, step, fmt(loss, "%.6f"), fmt(lr, "%.3g"), fmt(metric, "%.3f"),
                         fmt(rate, "%.1f")])
        self.f.flush()
        print(f"[{now} +{el:7.0f}s] {stage:5s} step {step:6}  loss {fmt(loss, '%.5f')}  lr {fmt(lr, '%.2e')}  "
              f"{fmt(metric, '%.2f')}  {fmt(rate, '%.1f')}/s {note}", flush=True)


def lr_at(progress: float, step: int, base: float, warmup: int) -> float:
    """Linear warm-up over `warmup` steps, then cosine from base to 5% of base over progress 0..1."""
    w = min(1.0, (step + 1) / warmup)
    p = min(1.0, max(0.0, progress))
    return base * w * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * p)))


def to_tensor(imgs):
    import torch
    return torch.from_numpy(imgs).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def save_atomic(obj, path):
    import torch
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# Stage 1: VAE

def vae_config(a) -> dict:
    import tiny_model as tm
    cfg = dict(tm.VAE_CONFIG)
    if a.vae_channels:
        cfg["block_out_channels"] = [int(c) for c in a.vae_channels.split(",")]
    if a.vae_groups:
        cfg["norm_num_groups"] = a.vae_groups
    return cfg


def recon_loss(rec, x, edge_weight: float):
    """MSE + L1 / 2 + edge (finite-difference) L1, and the MSE alone."""
    mse = (rec - x).square().mean()
    l1 = (rec - x).abs().mean()
    edge = ((rec.diff(dim=2) - x.diff(dim=2)).abs().mean() + (rec.diff(dim=3) - x.diff(dim=3)).abs().mean())
    return mse + 0.5 * l1 + edge_weight * edge, mse


def vae_losses(vae, x, kl_weight: float, edge_weight: float):
    post = vae.encode(x).latent_dist
    loss, mse = recon_loss(vae.decode(post.sample()).sample, x, edge_weight)
    # LDM: nll and KL are both summed per image; we average the reconstruction per pixel, so the KL
    # is divided by the pixel count to keep LDM's ratio.
    kl = post.kl().mean() / x[0].numel()
    return loss + kl_weight * kl, mse


def psnr(vae, x) -> float:
    import torch
    with torch.no_grad():
        rec = vae.decode(vae.encode(x).latent_dist.mode()).sample.clamp(-1, 1)
    mse = ((rec - x) / 2).square().mean().item()  # on the [0, 1] scale
    return 10.0 * math.log10(1.0 / max(mse, 1e-12))


def save_reconstructions(vae, x, path: str) -> None:
    """Rows of originals over their reconstructions (posterior mode), upscaled 4x, for a look by eye."""
    import numpy as np
    import torch
    from PIL import Image
    with torch.no_grad():
        rec = vae.decode(vae.encode(x).latent_dist.mode()).sample.clamp(-1, 1)
    to_u8 = lambda t: ((t.permute(0, 2, 3, 1).numpy() + 1) * 127.5).round().astype(np.uint8)  # noqa: E731
    rows = [np.concatenate(list(to_u8(t)), axis=1) for t in (x, rec)]
    grid = np.concatenate(rows, axis=0)
    Image.fromarray(grid).resize((grid.shape[1] * 4, grid.shape[0] * 4), Image.NEAREST).save(path)


def train_vae(a, log: Logger):
    import torch
    import data
    import tiny_model as tm
    final = os.path.join(a.out, "vae_final.pt")
    if os.path.exists(final) and not a.fresh:
        ck = torch.load(final)
        vae = tm.build_vae(ck["config"])
        vae.load_state_dict(ck["model"])
        print(f"stage 1: using {final} (PSNR {ck['psnr']:.2f} dB)")
        return vae, ck
    torch.manual_seed(a.seed)
    cfg = vae_config(a)
    vae = tm.build_vae(cfg)
    if a.vae_init_logvar:
        # quant_conv's output is [mean (C), logvar (C)]. Starting at logvar 0 (std 1) buries the young
        # latent in sampling noise and the decoder learns blobs; with LDM's tiny KL weight nothing
        # pulls the variance back up, so start it small (std e^-3 = 0.05 at -6).
        with torch.no_grad():
            vae.quant_conv.bias[cfg["latent_channels"]:] += a.vae_init_logvar
    opt = torch.optim.AdamW(vae.parameters(), lr=a.vae_lr, weight_decay=0.0)
    sampler = data.SceneSampler(a.seed, tm.IMAGE_SIZE)
    x_eval = to_tensor(data.SceneSampler(a.seed + 1000, tm.IMAGE_SIZE, exclude_heldout=False).batch(256)[0])
    ck_path = os.path.join(a.out, "vae_ckpt.pt")
    step, elapsed0, best = 0, 0.0, -1.0
    if os.path.exists(ck_path) and not a.fresh:
        ck = torch.load(ck_path)
        vae.load_state_dict(ck["model"]); opt.load_state_dict(ck["opt"])
        step, elapsed0, best = ck["step"], ck["elapsed"], ck["psnr"]
        sampler.rng.setstate(ck["sampler_rng"]); torch.set_rng_state(ck["torch_rng"])
        print(f"stage 1: resumed at step {step} ({elapsed0:.0f} s in)")
    print(f"stage 1: VAE {tm.count_params(vae)} params, batch {a.vae_batch}, <= {a.vae_steps} steps / "
          f"{a.vae_minutes} min, target {a.vae_target_psnr} dB")
    budget = a.vae_minutes * 60.0
    t_start, t_ck, t_log, n_log = time.time(), time.time(), time.time(), 0

    def checkpoint():
        save_atomic({"model": vae.state_dict(), "opt": opt.state_dict(), "step": step, "psnr": best,
                     "elapsed": elapsed0 + time.time() - t_start, "sampler_rng": sampler.rng.getstate(),
                     "torch_rng": torch.get_rng_state()}, ck_path)

    while True:
        elapsed = elapsed0 + time.time() - t_start
        if step >= a.vae_steps or elapsed >= budget or best >= a.vae_target_psnr:
            break
        lr = lr_at(max(step / a.vae_steps, elapsed / budget), step, a.vae_lr, warmup=200)
        for g in opt.param_groups:
            g["lr"] = lr
        x = to_tensor(sampler.batch(a.vae_batch)[0])
        loss, _ = vae_losses(vae, x, a.kl_weight, a.edge_weight)
        if not torch.isfinite(loss):
            raise RuntimeError(f"stage 1: loss is {loss.item()} at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        step += 1
        n_log += a.vae_batch
        metric = ""
        if step % a.eval_every == 0:
            metric = psnr(vae, x_eval)
            best = max(best, metric)
        if step % a.log_every == 0 or metric != "":
            log.row("vae", step, loss.item(), lr, metric, n_log / (time.time() - t_log),
                    note="(psnr dB)" if metric != "" else "")
            t_log, n_log = time.time(), 0
        if time.time() - t_ck > a.checkpoint_minutes * 60:
            checkpoint()
            t_ck = time.time()
    final_psnr = psnr(vae, x_eval)
    log.row("vae", step, "", "", final_psnr, "", note="final psnr dB")
    save_reconstructions(vae, x_eval[:16], os.path.join(a.out, "vae_recon.png"))
    checkpoint()
    out = {"model": vae.state_dict(), "config": cfg, "psnr": final_psnr, "steps": step,
           "elapsed": elapsed0 + time.time() - t_start}
    save_atomic(out, final)
    return vae, out


# ---------------------------------------------------------------------------------------------
# Stage 1b: decoder

def tune_decoder(a, vae, vae_ck: dict, log: Logger) -> dict:
    """Trains the decoder with the encoder frozen. Stage 1 stops once the autoencoder as a whole reaches its
    PSNR target, but the decoder is then still soft: small squares and triangles come back with rounded
    corners, and the UNet cannot draw sharper than the decoder. Freezing the encoder keeps the latent space,
    so this stage can run at any time before export (it was added after the shipped UNet was trained)."""
    import torch
    import data
    import tiny_model as tm
    final = os.path.join(a.out, "vae_final.pt")
    if vae_ck.get("decoder_steps") is not None or a.decoder_minutes <= 0:
        if vae_ck.get("decoder_steps"):
            print(f"stage 1b: done ({vae_ck['decoder_steps']} steps, PSNR {vae_ck['psnr']:.2f} dB)")
        return vae_ck
    torch.manual_seed(a.seed + 5)
    frozen = [vae.encoder, vae.quant_conv]
    for m in frozen:
        m.requires_grad_(False)
    params = list(vae.post_quant_conv.parameters()) + list(vae.decoder.parameters())
    opt = torch.optim.AdamW(params, lr=a.decoder_lr, weight_decay=0.0)
    sampler = data.SceneSampler(a.seed + 5, tm.IMAGE_SIZE)
    x_eval = to_tensor(data.SceneSampler(a.seed + 1000, tm.IMAGE_SIZE, exclude_heldout=False).batch(256)[0])
    ck_path = os.path.join(a.out, "decoder_ckpt.pt")
    step, elapsed0 = 0, 0.0
    if os.path.exists(ck_path) and not a.fresh:
        ck = torch.load(ck_path)
        vae.load_state_dict(ck["model"]); opt.load_state_dict(ck["opt"])
        step, elapsed0 = ck["step"], ck["elapsed"]
        sampler.rng.setstate(ck["sampler_rng"]); torch.set_rng_state(ck["torch_rng"])
        print(f"stage 1b: resumed at step {step} ({elapsed0:.0f} s in)")
    start_psnr = psnr(vae, x_eval)
    print(f"stage 1b: decoder, <= {a.decoder_steps} steps / {a.decoder_minutes} min, from {start_psnr:.2f} dB")
    budget = a.decoder_minutes * 60.0
    t_start, t_ck, t_log, n_log = time.time(), time.time(), time.time(), 0

    def checkpoint():
        save_atomic({"model": vae.state_dict(), "opt": opt.state_dict(), "step": step,
                     "elapsed": elapsed0 + time.time() - t_start, "sampler_rng": sampler.rng.getstate(),
                     "torch_rng": torch.get_rng_state()}, ck_path)

    for m in frozen:
        m.eval()
    while True:
        elapsed = elapsed0 + time.time() - t_start
        if step >= a.decoder_steps or elapsed >= budget:
            break
        lr = lr_at(max(step / a.decoder_steps, elapsed / budget), step, a.decoder_lr, warmup=100)
        for g in opt.param_groups:
            g["lr"] = lr
        x = to_tensor(sampler.batch(a.vae_batch)[0])
        with torch.no_grad():
            z = vae.encode(x).latent_dist.sample()
        loss, _ = recon_loss(vae.decode(z).sample, x, a.edge_weight)
        if not torch.isfinite(loss):
            raise RuntimeError(f"stage 1b: loss is {loss.item()} at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        n_log += a.vae_batch
        metric = ""
        if step % a.eval_every == 0:
            metric = psnr(vae, x_eval)
        if step % a.log_every == 0 or metric != "":
            log.row("dec", step, loss.item(), lr, metric, n_log / (time.time() - t_log),
                    note="(psnr dB)" if metric != "" else "")
            t_log, n_log = time.time(), 0
        if time.time() - t_ck > a.checkpoint_minutes * 60:
            checkpoint()
            t_ck = time.time()
    checkpoint()
    for m in frozen:
        m.requires_grad_(True)
    vae.eval()
    final_psnr = psnr(vae, x_eval)
    log.row("dec", step, "", "", final_psnr, "", note="final psnr dB")
    save_reconstructions(vae, x_eval[:16], os.path.join(a.out, "vae_recon.png"))
    dec_elapsed = elapsed0 + time.time() - t_start
    out = dict(vae_ck, model=vae.state_dict(), psnr=final_psnr, stage1_psnr=vae_ck["psnr"], decoder_steps=step,
               decoder_elapsed=dec_elapsed, elapsed=vae_ck["elapsed"] + dec_elapsed)
    save_atomic(out, final)
    print(f"stage 1b: {step} steps, {start_psnr:.2f} -> {final_psnr:.2f} dB")
    return out


# ---------------------------------------------------------------------------------------------
# Stage 2: latents

def encode_latents(a, vae, log: Logger):
    import torch
    import data
    import tiny_model as tm
    path = os.path.join(a.out, "latents.pt")
    if os.path.exists(path) and not a.fresh:
        lat = torch.load(path)
        if lat["count"] == a.latent_count:
            print(f"stage 2: using {path} ({lat['count']} latents, scaling_factor {lat['scaling_factor']:.5f})")
            return lat
    t0 = time.time()
    sampler = data.SceneSampler(a.seed + 1, tm.IMAGE_SIZE)
    scenes, means, stds = [], [], []
    vae.eval()
    with torch.no_grad():
        for i in range(0, a.latent_count, 256):
            imgs, _, sc = sampler.batch(min(256, a.latent_count - i))
            post = vae.encode(to_tensor(imgs)).latent_dist
            means.append(post.mean.clone()); stds.append(post.std.clone()); scenes += sc
    mean, std = torch.cat(means), torch.cat(stds)
    g = torch.Generator().manual_seed(a.seed)
    sample = mean + std * torch.randn(mean.shape, generator=g)
    scaling = 1.0 / sample.std().item()
    lat = {"count": a.latent_count, "mean": mean, "std": std, "scaling_factor": scaling,
           "elapsed": time.time() - t0,
           "scenes": [tuple(s.__dict__.values()) for s in scenes]}
    save_atomic(lat, path)
    log.row("lat", a.latent_count, "", "", scaling, a.latent_count / (time.time() - t0), note="(scaling_factor)")
    print(f"stage 2: {a.latent_count} latents, mean {sample.mean().item():.4f}, std {sample.std().item():.4f}, "
          f"posterior std mean {std.mean().item():.4f} -> scaling_factor {scaling:.5f}")
    return lat


# ---------------------------------------------------------------------------------------------
# Stage 3: text encoder + UNet

def tokenizer_files(a):
    import bpe
    folder = os.path.join(a.out, "tokenizer")
    bpe.build_default(folder)
    return folder, bpe.CLIPLikeTokenizer.from_files(folder)


def ema_update(ema_params, params, decay):
    import torch
    with torch.no_grad():
        torch._foreach_mul_(ema_params, decay)
        torch._foreach_add_(ema_params, params, alpha=1.0 - decay)


def train_unet(a, lat, log: Logger, minutes: float):
    import copy
    import random
    import torch
    import data
    import tiny_model as tm
    final = os.path.join(a.out, "final.pt")
    if os.path.exists(final) and not a.fresh:
        done = torch.load(final)
        if done.get("steps", 0) > 0:
            print(f"stage 3: {final} exists ({done['steps']} steps); nothing to train")
            return done
    tok_dir, tok = tokenizer_files(a)
    torch.manual_seed(a.seed + 2)
    te_cfg = tm.text_config(len(tok.vocab), tok.bos, tok.eos)
    te = tm.build_text_encoder(len(tok.vocab), tok.bos, tok.eos)
    unet = tm.build_unet()
    models = torch.nn.ModuleDict({"text_encoder": te, "unet": unet})
    dev = torch.device(a.device)
    models.to(dev)
    ema = copy.deepcopy(models).requires_grad_(False)
    params = [p for p in models.parameters()]
    opt = torch.optim.AdamW(params, lr=a.unet_lr, weight_decay=0.01)
    acp = tm.alphas_cumprod()
    t_weight = None
    if a.high_noise_weight > 0:
        t_weight = (1.0 / acp).clamp(max=a.high_noise_weight)
        t_weight = (t_weight / t_weight.mean()).to(dev)
    rng = random.Random(a.seed + 3)
    gen = torch.Generator().manual_seed(a.seed + 4)
    scenes = [data.Scene(*s) for s in lat["scenes"]]
    mean, std, scale = lat["mean"], lat["std"], lat["scaling_factor"]
    step, elapsed0, refine_step0 = 0, 0.0, None
    ck_path = os.path.join(a.out, "unet_ckpt.pt")
    if os.path.exists(ck_path) and not a.fresh:
        ck = torch.load(ck_path)
        if ck.get("scaling_factor") != scale:
            sys.exit(f"error: {ck_path} was trained on other latents (scaling_factor {ck.get('scaling_factor')}, "
                     f"now {scale}); rerun with --fresh, or delete it to restart stage 3")
        models.load_state_dict(ck["model"]); ema.load_state_dict(ck["ema"]); opt.load_state_dict(ck["opt"])
        step, elapsed0, refine_step0 = ck["step"], ck["elapsed"], ck.get("refine_step0")
        rng.setstate(ck["rng"]); gen.set_state(ck["gen"])
        print(f"stage 3: resumed at step {step} ({elapsed0:.0f} s in)")
    print(f"stage 3: UNet {tm.count_params(unet)} params, text encoder {tm.count_params(te)} params, "
          f"batch {a.unet_batch}, <= {a.unet_steps} steps / {minutes:.1f} min, {len(scenes)} latents")
    budget = minutes * 60.0
    refine_s = min(max(a.refine_minutes, 0.0) * 60.0, budget)
    main_budget = budget - refine_s          # the high-noise recipe's share of stage 3
    t_start, t_ck, t_log, n_log, loss_acc, n_acc = time.time(), time.time(), time.time(), 0, 0.0, 0
    ema_params, model_params = list(ema.parameters()), list(models.parameters())

    def checkpoint():
        save_atomic({"model": models.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                     "step": step, "elapsed": elapsed0 + time.time() - t_start, "rng": rng.getstate(),
                     "gen": gen.get_state(), "scaling_factor": scale, "refine_step0": refine_step0}, ck_path)

    models.train()
    while True:
        elapsed = elapsed0 + time.time() - t_start
        if step >= a.unet_steps or elapsed >= budget:
            break
        refining = refine_s > 0 and elapsed >= main_budget
        if refining:
            if refine_step0 is None:
                refine_step0 = step
                print(f"stage 3: refine phase from step {step} ({elapsed:.0f} s in): plain eps-MSE, uniform t")
            lr = lr_at((elapsed - main_budget) / refine_s, step - refine_step0, a.refine_lr, warmup=100)
        else:
            lr = lr_at(max(step / a.unet_steps, elapsed / max(main_budget, 1e-9)), step, a.unet_lr, warmup=500)
        for g in opt.param_groups:
            g["lr"] = lr
        idx = torch.randint(0, len(scenes), (a.unet_batch,), generator=gen)
        captions = ["" if rng.random() < a.caption_dropout else data.make_caption(scenes[i], rng) for i in idx.tolist()]
        ids = torch.tensor([tok.encode(c) for c in captions])
        x0 = (mean[idx] + std[idx] * torch.randn(mean[idx].shape, generator=gen)) * scale
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, len(acp), (a.unet_batch,), generator=gen)
        if a.high_t_fraction > 0 and not refining:
            high = torch.rand(a.unet_batch, generator=gen) < a.high_t_fraction
            t = torch.where(high, torch.randint(700, len(acp), (a.unet_batch,), generator=gen), t)
        ab = acp[t].view(-1, 1, 1, 1)
        if dev.type != "cpu":
            ids, x0, noise, t, ab = (v.to(dev, non_blocking=True) for v in (ids, x0, noise, t, ab))
        xt = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
        ctx = te(ids).last_hidden_state
        pred = unet(xt, t, ctx).sample
        if t_weight is None or refining:
            loss = (pred - noise).square().mean()
        else:
            loss = ((pred - noise).square().mean(dim=(1, 2, 3)) * t_weight[t]).mean()
        if not torch.isfinite(loss):
            raise RuntimeError(f"stage 3: loss is {loss.item()} at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        ema_update(ema_params, model_params, min(a.ema, (1 + step) / (10 + step)))
        loss_acc += loss.item()
        n_acc += 1
        n_log += a.unet_batch
        if step % a.log_every == 0:
            log.row("refin" if refining else "unet", step, loss_acc / n_acc, lr, "", n_log / (time.time() - t_log))
            t_log, n_log, loss_acc, n_acc = time.time(), 0, 0.0, 0
        if time.time() - t_ck > a.checkpoint_minutes * 60:
            checkpoint()
            t_ck = time.time()
    checkpoint()
    if step == 0:
        print("stage 3: WARNING: no training steps (budget used up by stages 1-2?); exporting an untrained UNet")
    ema.to("cpu")
    out = {"text_encoder": ema["text_encoder"].state_dict(), "unet": ema["unet"].state_dict(),
           "text_config": te_cfg, "unet_config": dict(tm.UNET_CONFIG), "steps": step,
           "elapsed": elapsed0 + time.time() - t_start, "tokenizer_dir": tok_dir}
    save_atomic(out, final)
    return out


# ---------------------------------------------------------------------------------------------

def benchmark(a):
    """Throughput of one training step of each stage, single-threaded and with --threads, in wall and
    CPU seconds (on a loaded machine the CPU-second rate is the better guide to a quiet machine)."""
    import torch
    import data
    import bpe
    import tiny_model as tm
    tok = bpe.CLIPLikeTokenizer(*bpe.build_bpe(bpe.caption_corpus()))
    vae, unet = tm.build_vae(vae_config(a)), tm.build_unet()
    te = tm.build_text_encoder(len(tok.vocab), tok.bos, tok.eos)
    s = data.SceneSampler(0, tm.IMAGE_SIZE)
    acp = tm.alphas_cumprod()

    def vae_step():
        loss, _ = vae_losses(vae, to_tensor(s.batch(a.vae_batch)[0]), a.kl_weight, a.edge_weight)
        loss.backward()
        return a.vae_batch

    def unet_step():
        n = a.unet_batch
        ids = torch.tensor([tok.encode(data.make_caption(s.random_scene(), s.rng)) for _ in range(n)])
        x0 = torch.randn(n, 4, tm.IMAGE_SIZE // 4, tm.IMAGE_SIZE // 4)
        t = torch.randint(0, 1000, (n,))
        ab = acp[t].view(-1, 1, 1, 1)
        pred = unet(ab.sqrt() * x0, t, te(ids).last_hidden_state).sample
        pred.square().mean().backward()
        return n

    def infer():
        with torch.no_grad():
            unet(torch.randn(2, 4, tm.IMAGE_SIZE // 4, tm.IMAGE_SIZE // 4), torch.tensor([500, 500]),
                 torch.randn(2, 77, tm.TEXT_HIDDEN))
        return 1

    results = {}
    for threads in sorted({1, a.threads}):
        torch.set_num_threads(threads)
        for name, fn, reps in (("vae_train", vae_step, 4), ("unet_te_train", unet_step, 3), ("unet_cfg_eval", infer, 20)):
            fn()
            w0, c0, n = time.time(), time.process_time(), 0
            for _ in range(reps):
                n += fn()
            w, c = time.time() - w0, time.process_time() - c0
            results[f"{name}@{threads}t"] = {"per_wall_s": n / w, "per_cpu_s": n / c}
            print(f"{name:14s} {threads} thread(s): {n / w:8.1f}/s wall, {n / c:8.1f}/s per CPU-second", flush=True)
    print(json.dumps(results))
    return results


def main(argv=None):
    a = parse_args(argv)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # torch parallelises itself; nested BLAS threads cost 1.5x
    import refenv
    refenv.ensure()
    import torch
    torch.set_num_threads(a.threads)
    if a.benchmark:
        benchmark(a)
        return
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "args.json"), "w") as f:
        json.dump(vars(a), f, indent=1)
    log = Logger(os.path.join(a.out, "train_log.csv"))
    print(f"train_tiny: out {a.out}, seed {a.seed}, torch {torch.__version__}, {a.threads} threads")
    vae, vae_ck = train_vae(a, log)
    vae_ck = tune_decoder(a, vae, vae_ck, log)
    if a.stop_after == "vae":
        return
    lat = encode_latents(a, vae, log)
    if a.stop_after == "latents":
        return
    used_min = (vae_ck["elapsed"] + lat.get("elapsed", 0.0)) / 60.0
    unet_min = a.total_minutes - used_min - a.export_reserve_minutes
    if a.unet_minutes is not None:
        unet_min = min(unet_min, a.unet_minutes)
    final = train_unet(a, lat, log, max(unet_min, 0.0))
    final.update(vae=vae_ck["model"], vae_config=dict(vae_ck["config"], scaling_factor=lat["scaling_factor"]),
                 vae_psnr=vae_ck["psnr"])
    save_atomic(final, os.path.join(a.out, "final.pt"))
    log.row("done", final["steps"], "", "", "", "")
    if not a.no_export:
        import export
        export.export_all(os.path.join(a.out, "final.pt"), os.path.join(a.out, "export"), seed=a.seed,
                          quick=a.quick)


if __name__ == "__main__":
    main()
