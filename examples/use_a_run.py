import sys

import torch

import avf

run = avf.load_run(sys.argv[1] if len(sys.argv) > 1 else "runs/own_model")  # best.pt
test = run.data("test")  # the split `avf evaluate` scores
with torch.no_grad():  # scoring only: AVF enables autograd for its own gradient inputs
    out = avf.filter_sequences(run.model, run.inference, test.x, test.mask)
print(f"{run.config.name}, epoch {run.epoch}: {out.per_step():.3f} nats/step on the test split")

stream = avf.StreamingFilter(run.model, run.inference, batch_size=1)  # one live stream
for x_t in test.x[0, :3]:
    step = stream.step(x_t[None])  # the posterior, F_t, and a prediction of x_{t+1}
    print(f"F_t = {step.free_energy.item():.3f}, x_t+1 predicted: {step.prediction[0].tolist()}")
future = stream.forecast(horizon=5, samples=10)  # imagined continuations of the stream
print(f"10 futures of 5 steps from the prior and likelihood: x {tuple(future.x.shape)}")
