"""Plot what a ``dqn`` pretraining run learned: input, Q map, mask, masked input, reconstruction.

Loads the run's last checkpoint (predictor and agent), takes the first images with a lesion from
the run's test split (images pretraining did not see) and masks them as validation does (greedy
argmax of Q). One row per image; the lesion outline is drawn on the input, the chosen block on
the Q map. This is how ``docs/images/dqn_qmap.png`` in the README was made::

    sslkit pretrain --masker dqn --data npz:../shared/data/busi/busi_64.npz --epochs 5 --out runs/dqn
    python examples/plot_dqn_run.py runs/dqn --out docs/images/dqn_qmap.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


def load_run(run_dir: Path):
    """(config dict, predictor, masker) from ``run_dir/checkpoints/last.pt``, on the CPU."""
    from sslkit.masking import MaskerContext
    from sslkit.models import build_predictor
    from sslkit.plugins import get_plugins

    state = torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    config = state["config"]
    if config["masker"] != "dqn":
        raise SystemExit(f"{run_dir} was pretrained with masker '{config['masker']}', not 'dqn'")
    plugins = get_plugins()
    predictor = build_predictor(config["backbone"], in_chans=config["in_chans"], plugins=plugins,
                                decoder_skips=config.get("decoder_skips", "all"), **config["backbone_options"])
    size = (config["image_size"], config["image_size"])
    cell_grid = None
    if config.get("encoding", "dense") == "sparse":  # the run's mask tokens are part of its predictor
        from sslkit.models.sparse import encoder_cell_grid

        cell_grid = encoder_cell_grid(predictor.encoder, size, config["in_chans"])
        predictor.enable_sparse_encoding(cell_grid, size)
    predictor.load_state_dict(state["model"])
    masker = plugins.maskers.create("dqn", **config["masker_options"])
    steps = state["steps_per_epoch"] * config["epochs"]
    masker.setup(MaskerContext(size, config["in_chans"], torch.device("cpu"), total_steps=steps,
                               steps_per_epoch=state["steps_per_epoch"], epochs=config["epochs"], seed=config["seed"],
                               cell_grid=cell_grid))
    masker.load_state_dict(state["masker"])
    return config, predictor.eval(), masker, state["step"], steps


def pick_images(config: dict, count: int) -> dict:
    """The first ``count`` images with a lesion (else any) of the run's test split (else val, train)."""
    from sslkit.data import make_loader, open_dataset

    ds = open_dataset(config["data"], seed=config.get("split_seed", 0), options=config.get("data_options") or None)
    split = next(s for s in ("test", "val", "train") if ds.splits.get(s))  # test: unseen in pretraining
    loader = make_loader(ds, (split,), purpose="eval", image_size=config["image_size"], in_chans=config["in_chans"],
                         batch_size=256, shuffle=False)
    loader.set_epoch(0)
    batch = next(iter(loader))
    order = torch.argsort((~batch["has_lesion"]).to(torch.int8), stable=True)[:count]
    return {k: v[order] for k, v in batch.items() if isinstance(v, torch.Tensor)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/images/dqn_qmap.png"))
    parser.add_argument("--images", type=int, default=4)
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sslkit.masking import StepInfo, apply_mask
    from sslkit_plugins.maskers._heat_map import normalize_per_image

    config, predictor, masker, step, total = load_run(args.run_dir)
    batch = pick_images(config, args.images)
    images = batch["image"]
    with torch.no_grad():
        masks = masker.propose(images, StepInfo(step, config["epochs"], total, training=False))
        masked = apply_mask(images, masks)
        reconstruction = predictor(masked)
    q = normalize_per_image(masker.log_images()["q_map"])[:, 0]

    def show(x: torch.Tensor):
        return ((x[0].float() + 1) / 2).clamp(0, 1).numpy()

    titles = ["input (lesion outlined)", "Q map (predicted loss)", "mask (greedy block)", "masked input", "reconstruction"]
    rows = images.shape[0]
    fig, axes = plt.subplots(rows, 5, figsize=(10, 2.1 * rows), squeeze=False)
    for r in range(rows):
        panels = [show(images[r]), q[r].numpy(), masks[r, 0].float().numpy(), show(masked[r]), show(reconstruction[r])]
        cmaps = ["gray", "inferno", "gray", "gray", "gray"]
        for c, (panel, cmap) in enumerate(zip(panels, cmaps)):
            ax = axes[r, c]
            ax.imshow(panel, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
            if c in (0, 1) and batch["lesion"][r].any():
                ax.contour(batch["lesion"][r, 0].float().numpy(), levels=[0.5], colors="cyan", linewidths=0.8)
            if c == 1:
                ax.contour(masks[r, 0].float().numpy(), levels=[0.5], colors="lime", linewidths=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[c], fontsize=8)
    options = ", ".join(f"{k}={v}" for k, v in config["masker_options"].items()) or "default options"
    fig.suptitle(f"dqn masker after {step} steps ({config['epochs']} epochs, {config['backbone']}, {options}); "
                 f"data: {Path(config['data']).name if config['data'] else 'embedded BUSI 64 px'} (test split)", fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
