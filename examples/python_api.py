# %% [markdown]
# # sslkit from Python
#
# The same work as `sslkit pretrain` and `sslkit finetune`, from a notebook or a script: pretrain
# an encoder by context prediction, fine-tune a classifier on 100 labels, and load the encoder
# for your own code. Settings are the commands' options with `_` for `-`, and the defaults are
# the commands' defaults (one place: the config dataclasses). Run it as a script
# (`python examples/python_api.py`), or open it as a notebook (the `# %%` cells work in VS Code,
# Jupytext and Spyder). The test suite runs this file on tiny data (`tests/core/test_core_api.py`
# sets `SSLKIT_EXAMPLE_PRETRAIN` and `SSLKIT_EXAMPLE_FINETUNE`).

# %%
import json
import os
import tempfile

import sslkit

#: One epoch of the Quick start on the embedded BUSI 64 px data (about half a minute on a CPU core),
#: then a linear probe on 100 labels; the tests replace them with tiny settings.
PRETRAIN = {"masker": "random", "epochs": 1, "threads": 1, **json.loads(os.environ.get("SSLKIT_EXAMPLE_PRETRAIN", "{}"))}
FINETUNE = {"protocol": "linear", "labels": 100, "threads": 1, **json.loads(os.environ.get("SSLKIT_EXAMPLE_FINETUNE", "{}"))}
OUT = os.environ.get("SSLKIT_EXAMPLE_OUT") or tempfile.mkdtemp(prefix="sslkit-api-")

# %% [markdown]
# ## Pretrain
# Keyword settings, or a config object: `sslkit.pretrain(sslkit.PretrainConfig(masker="random"))`.

# %%
run = sslkit.pretrain(out=f"{OUT}/pretrain", quiet=True, **PRETRAIN)
print(run)  # PretrainResult(run_dir=..., encoder=..., epochs=1, loss=..., first_epoch_loss=...)

# %% [markdown]
# ## Fine-tune a linear probe on 100 labels
# `encoder=` takes the run directory, as `sslkit finetune --encoder` does; the data, split seed
# and image size default to the pretraining run's, so its held-out test images stay held out.

# %%
result = sslkit.finetune(encoder=run.run_dir, quiet=True, **FINETUNE)
print(result)  # FinetuneResult(out=None, seed=0, test: accuracy ..., macro_f1 ..., auroc ...)
print(result.metrics["test"].scalars)

# %% [markdown]
# ## The encoder in your own code
# A `torch.nn.Module` whose forward returns a list of feature maps, shallow to deep.

# %%
import torch  # noqa: E402 - imported where the notebook needs it

encoder = sslkit.load_encoder(run.run_dir).eval()
size = PRETRAIN.get("image_size", sslkit.PretrainConfig().image_size)
with torch.no_grad():
    features = encoder(torch.zeros(1, 1, size, size))
print([tuple(f.shape) for f in features])
