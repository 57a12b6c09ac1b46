"""`sslkit pretrain`: parse options, merge them over a config file, hand over to the engine.

Several processes: under ``torchrun`` every process runs this command (only rank 0 prints);
``--nproc N`` is the shortcut that starts N local processes through PyTorch's own launcher, with
the same options, as ``torchrun --standalone --nproc-per-node N -m sslkit pretrain ...`` would.
"""

from __future__ import annotations


import click

from sslkit.pretraining.config import CHOICES, PretrainConfig
from sslkit.runtime import THREADS_HELP

_D = PretrainConfig()
#: CLI parameter name -> config key, where they differ
_RENAMES = {"masker_opt": "masker_options", "backbone_opt": "backbone_options", "data_opt": "data_options"}
_NOT_CONFIG = ("config_file", "resume", "nproc")


def _explicit_values(ctx: click.Context) -> dict:
    """Options the user actually typed (or set through the environment), as config keys."""
    from click.core import ParameterSource

    from sslkit.options import parse_options

    values = {}
    for name, value in ctx.params.items():
        if name in _NOT_CONFIG:
            continue
        source = ctx.get_parameter_source(name)
        if source not in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT):
            continue
        key = _RENAMES.get(name, name)
        if key.endswith("_options"):
            value = parse_options(value, f"--{name.replace('_', '-')}")
        values[key] = value
    return values


def _choice(key: str) -> click.Choice:
    return click.Choice(CHOICES[key], case_sensitive=False)


@click.command("pretrain")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), metavar="FILE.yaml",
              help="Read settings from a YAML file (keys = option names); options given here override it.")
@click.option("--resume", type=click.Path(file_okay=False), metavar="RUN_DIR",
              help="Continue a run exactly where its last checkpoint left it (with its own settings and, on the "
                   "CPU, its thread count; an edited config.yaml is refused). Ctrl-C, SIGTERM and SIGUSR1 save "
                   "and print this command.")
@click.option("--masker", default=_D.masker, show_default=True, help="Masking strategy (see 'sslkit list maskers').")
@click.option("--masker-opt", multiple=True, metavar="KEY=VALUE", help="Masker option (repeatable), e.g. ratio=0.6 (see sslkit list maskers NAME).")
@click.option("--backbone", default=_D.backbone, show_default=True,
              help="Encoder backbone: any timm model with features_only, or paper-unet.")
@click.option("--backbone-opt", multiple=True, metavar="KEY=VALUE", help="Backbone option (repeatable).")
@click.option("--encoding", type=_choice("encoding"), default=_D.encoding, show_default=True,
              help="How the encoder sees a masked image. dense: the masked pixels are zeros in an ordinary forward "
                   "pass. sparse (SparK): every conv/pool/norm output is zeroed at the masked positions and "
                   "BatchNorm uses the visible positions only, so the encoder computes on the visible cells alone; "
                   "masks become unions of the encoder's deepest-map cells (grid maskers use that grid when theirs "
                   "does not nest in it, box maskers draw whole cells, any other mask is snapped: a cell is hidden "
                   "when at least half of it is); the decoder fills masked positions with a learned token per scale. "
                   "Fine-tuning and export use the encoder densely, with the same weights.")
@click.option("--target", type=_choice("target"), default=_D.target, show_default=True,
              help="What is reconstructed: pixels, or norm-pixels (each cell of the encoder's grid normalised to "
                   "mean 0, std 1 per channel, MAE's norm_pix_loss).")
@click.option("--decoder-skips", type=_choice("decoder_skips"), default=_D.decoder_skips, show_default=True,
              help="Skip connections of the decoder: all (U-Net), deepest, or none. With every skip the decoder can "
                   "fill a hole from shallow features and the deep encoder learns little; fewer skips make the "
                   "reconstruction pass through it. auto (the recipe): none wherever the decoder can drop them "
                   "(a plugin's own decoder that cannot is kept as built).")
@click.option("--data", default=None, metavar="ADAPTER:LOCATION",
              help="Dataset, e.g. npz:busi_64.npz or folder:images/ (default: the embedded BUSI 64 px set).")
@click.option("--data-opt", multiple=True, metavar="KEY=VALUE", help="Dataset adapter option (repeatable).")
@click.option("--pretrain-splits", default=_D.pretrain_splits, show_default=True, metavar="SPLITS",
              help="Splits to pretrain on, joined by '+'; 'all' adds the test split as the paper did "
                   "(then test images are no longer unseen in evaluation).")
@click.option("--image-size", type=int, default=_D.image_size, show_default=True, help="Square input size in pixels.")
@click.option("--in-chans", type=int, default=_D.in_chans, show_default=True, help="Input channels: 1 (grey) or 3 (colour); images are converted.")
@click.option("--on-bad-image", type=_choice("on_bad_image"), default=_D.on_bad_image, show_default=True,
              help="Skip unreadable images (listed at the end) or stop at the first.")
@click.option("--split-seed", type=int, default=_D.split_seed, show_default=True,
              help="Seed of the train/val/test split for data without its own splits.")
@click.option("--workers", type=int, default=_D.workers, show_default=True, help="Data-loading processes.")
@click.option("--epochs", type=int, default=_D.epochs, show_default=True, help="Passes over the pretraining images.")
@click.option("--batch-size", type=int, default=_D.batch_size, show_default=True,
              help="Images per optimizer step (the global batch with several processes).")
@click.option("--lr", type=float, default=_D.lr, show_default=True, help="Peak learning rate.")
@click.option("--weight-decay", type=float, default=_D.weight_decay, show_default=True,
              help="Adam(W) weight decay of the predictor.")
@click.option("--optimizer", type=_choice("optimizer"), default=_D.optimizer, show_default=True)
@click.option("--schedule", type=_choice("schedule"), default=_D.schedule, show_default=True,
              help="multistep: x gamma at the milestones (the paper); cosine: to 0; constant.")
@click.option("--milestones", default=",".join(f"{m:.4g}" for m in _D.milestones), show_default=True,
              metavar="F1,F2", help="MultiStep milestones as fractions of training.")
@click.option("--gamma", type=float, default=_D.gamma, show_default=True, help="MultiStep decay factor.")
@click.option("--warmup-epochs", type=float, default=_D.warmup_epochs, show_default=True,
              help="Linear learning-rate warm-up (any schedule).")
@click.option("--loss", type=_choice("loss"), default=_D.loss, show_default=True,
              help="Squared error over the masked pixels, or over the whole image.")
@click.option("--seed", type=int, default=_D.seed, show_default=True,
              help="Seeds the weights, the data order and the masks (the split has --split-seed).")
@click.option("--out", default=None, metavar="RUN_DIR", help="Run directory (default: runs/<masker>-<timestamp>).")
@click.option("--device", type=_choice("device"), default=_D.device, show_default=True,
              help="auto: cuda, then mps, then cpu.")
@click.option("--precision", type=_choice("precision"), default=_D.precision, show_default=True,
              help="Autocast precision. auto: bf16 where the hardware computes it natively (CUDA GPUs from "
                   "Ampere on; CPUs with AMX or AVX-512 BF16), else fp32; the choice is printed and saved in "
                   "config.yaml, and --resume keeps it. fp16 uses a gradient scaler.")
@click.option("--channels-last/--no-channels-last", default=_D.channels_last, show_default=True,
              help="Keep the predictor and the images in channels_last (NHWC) layout: faster convolutions, "
                   "same arithmetic.")
@click.option("--threads", type=int, default=_D.threads, show_default=True, help=THREADS_HELP)
@click.option("--compile/--no-compile", default=_D.compile, show_default=True,
              help="torch.compile the predictor (works with bf16 and channels_last, resumes exactly). On the 2-core "
                   "development CPU it did not pay: the first step compiled for 94 s (3 s with a warm cache) "
                   "and later steps ran at 0.81-0.86x eager's speed (benchmarks/bench_compile.py); try it on a GPU. "
                   "Needs a C compiler on a CPU.")
@click.option("--logdir", default=None, metavar="DIR", help="TensorBoard folder (default: RUN_DIR/tensorboard).")
@click.option("--log-every", type=int, default=_D.log_every, show_default=True, metavar="STEPS",
              help="Log scalars every N steps.")
@click.option("--log-images-every", type=int, default=_D.log_images_every, show_default=True, metavar="STEPS",
              help="Log an image grid every N steps (and at the first and last); 0 = never.")
@click.option("--checkpoint-every", type=int, default=_D.checkpoint_every, show_default=True, metavar="EPOCHS",
              help="Keep checkpoints/epoch_N.pt every N epochs (last.pt is written every epoch); 0 = never.")
@click.option("--checkpoint-every-steps", type=int, default=_D.checkpoint_every_steps, show_default=True,
              metavar="STEPS", help="Also update last.pt every N steps inside an epoch; 0 = never.")
@click.option("--knn-every", type=int, default=_D.knn_every, show_default=True, metavar="EPOCHS",
              help="k-NN accuracy of the frozen encoder on the val split every N epochs (labelled data); 0 = never.")
@click.option("--quiet", "-q", is_flag=True, default=_D.quiet, help="No progress bar or summaries.")
@click.option("--nproc", type=click.IntRange(min=1), default=1, show_default=True, metavar="N",
              help="Train in N processes on this machine (DistributedDataParallel via torchrun: one per GPU, or "
                   "gloo on the CPU); --batch-size stays the global batch. Same as "
                   "'torchrun --nproc-per-node N -m sslkit pretrain ...'.")
@click.pass_context
def pretrain_command(ctx: click.Context, config_file: str | None, resume: str | None, nproc: int, **_: object) -> None:
    """Pretrain an encoder by context prediction: a masker hides part of each image and a
    predictor (encoder + decoder) learns to reconstruct it.

    \b
    Examples:
      sslkit pretrain --masker random --epochs 1 --out runs/random
      sslkit pretrain --masker dqn --data npz:busi_64.npz --epochs 30
      sslkit pretrain --config examples/pretrain_config.yaml --lr 3e-4
      sslkit pretrain --resume runs/random
      sslkit pretrain --masker dqn --nproc 2 --batch-size 64
      torchrun --nproc-per-node 4 -m sslkit pretrain --masker dqn --device cuda
      tensorboard --logdir runs
    """
    from sslkit.pretraining.dist_info import DistInfo

    if nproc > 1:
        from sslkit.pretraining.launch import launch_local
        from sslkit.pretraining.run_parts import local_batch_size

        config = _resolve_config(ctx, config_file, resume)  # bad options fail once, here
        local_batch_size(config.batch_size, DistInfo(world_size=nproc))
        ctx.exit(launch_local(nproc, _child_args(ctx)))
    dist = DistInfo.from_env()
    if dist.is_main:
        _pretrain(ctx, config_file, resume, dist)
        return
    from sslkit.pretraining.train_state import TrainingDiverged, TrainingInterrupted
    from sslkit.engine.run_lock import RunRefused
    from sslkit.errors import UserError

    try:
        _pretrain(ctx, config_file, resume, dist)
    except (TrainingDiverged, TrainingInterrupted, RunRefused) as stopped:  # agreed by all; rank 0 says why
        ctx.exit(getattr(stopped, "exit_code", 130))
    except UserError as error:  # may be this process's own (a node without the data): say who
        error.message = f"rank {dist.rank}: {error.message}"  # type: ignore[misc]  # click marks it Final
        raise


def _child_args(ctx: click.Context) -> list[str]:
    """``sslkit [--plugin F] pretrain <the options given here, minus --nproc>`` for the child processes."""
    import os

    from click.core import ParameterSource

    from sslkit.cli import plugin_files_of

    root: list[str] = ["sslkit"]
    for file in plugin_files_of(ctx):
        root += ["--plugin", os.path.abspath(file)]
    args: list[str] = []
    for param in ctx.command.params:
        if not isinstance(param, click.Option) or param.name == "nproc":
            continue
        if ctx.get_parameter_source(param.name) not in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT):
            continue
        value = ctx.params[param.name]
        flag = max(param.opts, key=len)  # the long form
        if param.is_flag:
            if param.secondary_opts:
                args.append(flag if value else max(param.secondary_opts, key=len))
            elif value:
                args.append(flag)
        elif param.multiple:
            for item in value:
                args += [flag, str(item)]
        elif value is not None:
            args += [flag, str(value)]
    return [*root, "pretrain", *args]


def _resolve_config(ctx: click.Context, config_file: str | None, resume: str | None):
    """The run's configuration: saved (``--resume``) or defaults < file < options, validated."""
    from sslkit.pretraining.config import load_config_file, merge, validate
    from sslkit.errors import UserError

    explicit = _explicit_values(ctx)
    if resume is not None:
        from sslkit.pretraining.run import resume_config

        if config_file is not None:
            raise UserError("--config cannot be combined with --resume (a resumed run keeps its saved configuration)")
        config = resume_config(resume, explicit)
    else:
        file_values = load_config_file(config_file) if config_file else {}
        config = validate(merge(file_values, explicit, f"config file '{config_file}'" if config_file else "options"))
    from sslkit.data.transforms import check_in_chans

    check_in_chans(config.in_chans)  # 2 or 4 would make every image unreadable: refuse before any work
    return config


def _pretrain(ctx: click.Context, config_file: str | None, resume: str | None, dist) -> None:
    from sslkit.cli import load_plugins_for
    from sslkit.pretraining.config import check_plugin_names

    config = _resolve_config(ctx, config_file, resume)
    plugins = load_plugins_for(ctx)
    check_plugin_names(config, plugins)  # a typo fails before torch is imported
    from sslkit.pretraining.run import run_pretraining
    from sslkit.pretraining.train_state import TrainingInterrupted
    try:
        final = run_pretraining(config, plugins, resume=resume)
    except TrainingInterrupted as interrupted:
        if dist.is_main:
            click.echo(interrupted.message, err=True)
        ctx.exit(interrupted.exit_code)
    if not config.quiet and dist.is_main:
        run_dir = final["run_dir"]
        logdir = config.logdir or f"{run_dir}/tensorboard"
        first, last = final.get("first_epoch_loss"), final.get("loss")
        if first is None:
            trend = ""
        elif final["epochs"] > 1:
            trend = f"loss {first:.5f} (epoch 1) -> {last:.5f} (epoch {final['epochs']}); "
        else:
            trend = f"loss {last:.5f}; "
        click.echo(f"Done: {trend}encoder in {final['encoder']}; view with: tensorboard --logdir {logdir}")
