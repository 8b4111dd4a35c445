import torch
from torch import nn
from torch.distributions import Independent, Normal

import avf


class MyModel(avf.StepModel):
    """z_t = tanh(W z_{t-1}) + noise, x_t = V z_t + noise: one step, the library runs the loop."""

    def __init__(self, z_dim: int = 2, x_dim: int = 3) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.dynamics = nn.Linear(z_dim, z_dim)
        self.emission = nn.Linear(z_dim, x_dim)
        self.log_noise = nn.Parameter(torch.zeros(2))

    def initial_state(self, batch_size):
        return torch.zeros(batch_size, self.z_dim)  # the previous z

    def prior(self, state):
        return Independent(Normal(torch.tanh(self.dynamics(state)), self.log_noise[0].exp()), 1)

    def likelihood(self, z, state):  # z may be [B, Dz] or [S, B, Dz]
        return Independent(Normal(self.emission(z), self.log_noise[1].exp()), 1)

    def transition(self, state, z, x):
        return z


if __name__ == "__main__":  # so that `avf train examples/own_model.toml` can import MyModel
    model = MyModel()
    x, _ = avf.sample_sequences(model, batch_size=16, steps=20)  # [B, T, Dx]
    for inference in [avf.PriorOnly(), avf.Direct(x_dim=3, latent_dim=2, hidden=64),
                      avf.Iterative(latent_dim=2, iterations=2, hidden=64),
                      avf.GradientDescent(iterations=20)]:
        out = avf.filter_sequences(model, inference, x)  # free energy, KL, recon: [B, T]
        avf.backward(out, model, inference)  # θ ← model_loss, φ ← inference_loss only
        print(f"{type(inference).__name__:16s} {out.per_step():.3f} nats/step")
