"""The README's picture of sparse masked encoding, from a finished ``--encoding sparse`` run.

One validation image of the run's data: the input, the mask on the encoder's cells, what the
encoder computes at each scale (the mean absolute activation per position; masked positions are
exactly zero, drawn dark), and the reconstruction (visible cells from the input, masked cells
from the predictor, un-normalised when the run's target is norm-pixels).

    python examples/plot_sparse_encoding.py runs/recipe19/pretrain/grid75-sparse-norm-os8-resnet18-e15 \\
        --out docs/images/sparse_encoding.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


def load_sparse_run(run_dir: Path):
    """(config dict, predictor with its mask tokens, cell grid) from ``run_dir/checkpoints/last.pt``."""
    from sslkit.models import build_predictor
    from sslkit.models.sparse import encoder_cell_grid

    state = torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    config = state["config"]
    if config.get("encoding") != "sparse":
        raise SystemExit(f"{run_dir} was pretrained with --encoding {config.get('encoding', 'dense')}, not sparse")
    predictor = build_predictor(config["backbone"], in_chans=config["in_chans"], decoder_skips=config["decoder_skips"],
                                **config["backbone_options"])
    size = (config["image_size"], config["image_size"])
    grid = encoder_cell_grid(predictor.encoder, size, config["in_chans"])
    predictor.enable_sparse_encoding(grid, size)
    predictor.load_state_dict(state["model"])
    return config, predictor.eval(), grid


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/images/sparse_encoding.png"))
    parser.add_argument("--index", type=int, default=0, help="which validation image")
    parser.add_argument("--ratio", type=float, default=0.75, help="share of the cells hidden")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sslkit.data import make_loader, open_dataset
    from sslkit.pretraining.loss import reconstruction_target
    from sslkit.masking import cells_to_masks

    config, predictor, grid = load_sparse_run(args.run_dir)
    data = open_dataset(config["data"], seed=config.get("split_seed", 0), options=config.get("data_options") or None)
    loader = make_loader(data, ("val",), purpose="eval", image_size=config["image_size"], in_chans=config["in_chans"],
                         batch_size=args.index + 1, shuffle=False)
    image = next(iter(loader))["image"][args.index:args.index + 1]
    g = torch.Generator().manual_seed(args.seed)
    hidden_count = round(args.ratio * grid[0] * grid[1])
    hidden = torch.zeros(grid[0] * grid[1], dtype=torch.bool)
    hidden[torch.randperm(grid[0] * grid[1], generator=g)[:hidden_count]] = True
    hidden = hidden.view(1, *grid)
    masks = cells_to_masks(hidden, tuple(image.shape[-2:]))
    masked = image.masked_fill(masks, 0.0)
    with torch.no_grad(), predictor.sparse.active(~hidden):
        features = predictor.encoder(predictor.sparse.zero_masked_(masked.clone()))
        output = predictor(masked, ~hidden)
    _, to_pixels = reconstruction_target(image, config.get("target", "pixels"), grid)
    reconstruction = torch.where(masks, to_pixels(output), image).clamp(-1, 1)

    panels = [("input", image[0, 0]), (f"visible: {grid[0] * grid[1] - hidden_count} of {grid[0]}x{grid[1]} cells", (~masks)[0, 0].float()),
              ("encoder input", masked[0, 0])]
    panels += [(f"level {i + 1}: {f.shape[-2]}x{f.shape[-1]}", f[0].abs().mean(0)) for i, f in enumerate(features)]
    panels += [("reconstruction", reconstruction[0, 0])]
    figure, axes = plt.subplots(1, len(panels), figsize=(1.9 * len(panels), 2.3))
    for axis, (title, picture) in zip(axes, panels):
        axis.imshow(picture.numpy(), cmap="gray" if "level" not in title else "magma", interpolation="nearest")
        axis.set_title(title, fontsize=8)
        axis.axis("off")
    figure.suptitle(f"sparse masked encoding: {config['backbone']} {config['backbone_options'] or ''}, "
                    f"{config['image_size']} px, target {config.get('target', 'pixels')} (dark = exactly zero)", fontsize=9)
    figure.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
