"""PGD-train `mymodels.build` on the bundled digits with robnet and save its plain state_dict (and a
.safetensors copy): the files `robnet eval` / `fspkit score` read with `--arch mymodels:build`.

    OMP_NUM_THREADS=1 python train_mymodel.py        # about a minute on a CPU core
"""

import torch
from mymodels import build
from safetensors.torch import save_file

from robnet.data import load_dataset
from robnet.train import TrainConfig, finetune

torch.manual_seed(0)
model = build()
config = TrainConfig(epochs=8, warmup_epochs=1, batch_size=64, lr=0.1, eps=0.1, step_size=0.025, attack_steps=5,
                     crop_padding=1, flip=False)
for record in finetune(model, load_dataset("digits", split="train"), epochs=8, config=config, progress=False):
    print(f"epoch {record.epoch}: train-adv accuracy {record.train_adv_acc:.3f}")
model = model.to(memory_format=torch.contiguous_format)  # plain tensors for the files
torch.save(model.state_dict(), "m.pt")
save_file({k: v.contiguous() for k, v in model.state_dict().items()}, "m.safetensors")
print("saved m.pt and m.safetensors")
