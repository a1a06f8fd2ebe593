"""A complete training loop with an optimlab optimizer: an MLP on scikit-learn's bundled 8x8 digits
(no download), Muon on the hidden matrices and AdamW on the rest, a cosine LR schedule.

    python examples/training_loop.py

prints the role table (which parameter gets which update chain) and the final loss and training
accuracy (about 0.96 after 200 steps). The code below is the README's training-loop example,
verbatim; tests/test_docs.py checks that both run.
"""
import torch
from torch import nn
from sklearn.datasets import load_digits

import optimlab

digits = load_digits()  # 1797 8x8 images bundled with scikit-learn: no download
x = torch.tensor(digits.data, dtype=torch.float32) / 16
y = torch.tensor(digits.target)
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10))
opt = optimlab.create(model, "muon", verbose=True)  # hidden matrices: Muon; the rest: AdamW
sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=200)
for step in range(200):
    batch = torch.randint(0, len(x), (64,))
    loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()
with torch.no_grad():
    logits = model(x)
accuracy = (logits.argmax(1) == y).float().mean().item()
print(f"loss {nn.functional.cross_entropy(logits, y):.3f}, train accuracy {accuracy:.3f}")
