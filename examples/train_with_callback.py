import avf
from avf.data import sample_dataset
from avf.models import LinearGaussian


class PrintEvery(avf.Callback):
    """Print the training free energy of every n-th batch (a hook, not a copy of the loop)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def on_batch_end(self, trainer, batch):
        if batch.step % self.n == 0:
            print(f"epoch {batch.epoch} batch {batch.batch}: {batch.free_energy():.3f} nats/step")

    def on_epoch_end(self, trainer, record):
        if record["valid_free_energy"] < 3.0:  # any rule of your own
            trainer.request_stop()


model = LinearGaussian.random(latent_dim=2, obs_dim=2, seed=0)
train, valid = sample_dataset(model, 64, 20, seed=0), sample_dataset(model, 16, 20, seed=1)
inference = avf.Iterative(latent_dim=2, iterations=1, hidden=32)
config = avf.TrainConfig(epochs=4, batch_size=16, model_lr=3e-3, inference_lr=3e-3,
                         progress=False)
trainer = avf.Trainer(model, inference, config, run_dir=None, callbacks=[PrintEvery(4)])
history = trainer.fit(train, valid)  # with a run_dir: checkpoints, metrics.jsonl, resume
print(f"{len(history)} epochs, validation {history[-1]['valid_free_energy']:.3f} nats/step")
