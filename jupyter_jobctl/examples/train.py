"""Demo trainer: a real small model (softmax regression + one hidden layer, NumPy) on
synthetic data, so the whole flow works with no user code.

Target: ``jupyter_jobctl.examples.train:main``. Config (validated by specs.validate_demo_config):
``mode`` (``smoke_test``: about one second per epoch, so a person can watch and stop it;
``full``: minutes), ``epochs``, ``batch_size``, ``learning_rate``, ``optimizer``
(``adam`` | ``sgd`` | ``rmsprop``), ``seed``.

Progress is in epochs (``done/total``), reported within an epoch too, as a fraction, at
least every ``REPORT_EVERY`` seconds; it checkpoints while initialising and after every
batch, so a stop is honoured at once in every phase.
"""

from __future__ import annotations

import time
from typing import Any, TypedDict

from jupyter_jobctl import runtime as jc
from jupyter_jobctl.core.specs import validate_demo_config


class _Mode(TypedDict):
    samples: int
    features: int
    hidden: int
    epoch_seconds: float | None


# smoke_test: ~1 s per epoch; full: ~2 min for 5 epochs on this kind of machine
MODES: dict[str, _Mode] = {
    "smoke_test": {"samples": 2048, "features": 20, "hidden": 32, "epoch_seconds": 1.0},
    "full": {"samples": 200_000, "features": 64, "hidden": 256, "epoch_seconds": None},
}
CLASSES = 3
REPORT_EVERY = 0.5  # seconds between progress reports within an epoch


class _Optimizer:
    def __init__(self, name: str, lr: float, shapes: list[tuple[int, ...]]) -> None:
        import numpy as np

        self.name, self.lr, self.t = name, lr, 0
        self.m = [np.zeros(s) for s in shapes]
        self.v = [np.zeros(s) for s in shapes]

    def step(self, params: list[Any], grads: list[Any]) -> None:
        import numpy as np

        self.t += 1
        for i, (p, g) in enumerate(zip(params, grads)):
            if self.name == "sgd":
                self.m[i] = 0.9 * self.m[i] + g  # momentum
                p -= self.lr * self.m[i]
            elif self.name == "rmsprop":
                self.v[i] = 0.9 * self.v[i] + 0.1 * g * g
                p -= self.lr * g / (np.sqrt(self.v[i]) + 1e-8)
            else:  # adam
                self.m[i] = 0.9 * self.m[i] + 0.1 * g
                self.v[i] = 0.999 * self.v[i] + 0.001 * g * g
                m_hat = self.m[i] / (1 - 0.9**self.t)
                v_hat = self.v[i] / (1 - 0.999**self.t)
                p -= self.lr * m_hat / (np.sqrt(v_hat) + 1e-8)


def _data(rng: Any, n: int, d: int) -> tuple[Any, Any]:
    import numpy as np

    centers = rng.normal(0, 2.0, size=(CLASSES, d))
    y = rng.integers(0, CLASSES, size=n)
    x = centers[y] + rng.normal(0, 1.5, size=(n, d))
    return x.astype(np.float64), y


def main(config: dict[str, Any] | None = None) -> dict[str, float]:
    job = jc.current()
    cfg = validate_demo_config(dict(config or job.config or {}), prefix="config")
    mode = MODES[cfg["mode"]]
    epochs = cfg["epochs"]
    job.log(
        f"Initialising: mode={cfg['mode']} optimizer={cfg['optimizer']} "
        f"lr={cfg['learning_rate']} batch_size={cfg['batch_size']} epochs={epochs}"
    )
    job.set_progress(0, epochs, unit="epoch", checkpoint=False)
    job.checkpoint("initialising")  # a stop before numpy loads
    import numpy as np

    job.checkpoint("initialising")
    rng = np.random.default_rng(cfg["seed"])
    x, y = _data(rng, mode["samples"], mode["features"])
    job.checkpoint("initialising")
    split = int(0.8 * len(x))
    x_train, y_train, x_val, y_val = x[:split], y[:split], x[split:], y[split:]
    d, h = mode["features"], mode["hidden"]
    w1 = rng.normal(0, np.sqrt(2 / d), size=(d, h))
    b1 = np.zeros(h)
    w2 = rng.normal(0, np.sqrt(2 / h), size=(h, CLASSES))
    b2 = np.zeros(CLASSES)
    params = [w1, b1, w2, b2]
    opt = _Optimizer(cfg["optimizer"], cfg["learning_rate"], [p.shape for p in params])
    job.log(
        f"Initialised: {split} training and {len(x) - split} validation samples, "
        f"{sum(p.size for p in params)} parameters"
    )

    def forward(xb: Any) -> tuple[Any, Any]:
        hid = np.maximum(xb @ w1 + b1, 0)
        logits = hid @ w2 + b2
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return hid, p / p.sum(axis=1, keepdims=True)

    batches = max(1, split // cfg["batch_size"])
    # smoke_test paces each epoch to about a second so a person can watch and stop it
    pause = (mode["epoch_seconds"] / batches) if mode["epoch_seconds"] else 0.0
    result: dict[str, float] = {}
    next_report = time.monotonic() + REPORT_EVERY
    for epoch in range(1, epochs + 1):
        t0 = time.monotonic()
        order = rng.permutation(split)
        total_loss = 0.0
        for b in range(batches):
            idx = order[b * cfg["batch_size"] : (b + 1) * cfg["batch_size"]]
            xb, yb = x_train[idx], y_train[idx]
            hid, probs = forward(xb)
            total_loss += float(-np.log(probs[np.arange(len(yb)), yb] + 1e-12).mean())
            grad = probs
            grad[np.arange(len(yb)), yb] -= 1
            grad /= len(yb)
            g_w2 = hid.T @ grad
            g_b2 = grad.sum(axis=0)
            g_hid = (grad @ w2.T) * (hid > 0)
            g_w1 = xb.T @ g_hid
            g_b1 = g_hid.sum(axis=0)
            opt.step(params, [g_w1, g_b1, g_w2, g_b2])
            job.checkpoint(f"epoch {epoch} batch {b + 1}/{batches}")
            if (now := time.monotonic()) >= next_report and b + 1 < batches:
                done = round(epoch - 1 + (b + 1) / batches, 3)  # within the epoch
                job.set_progress(done, epochs, unit="epoch", checkpoint=False)
                next_report = now + REPORT_EVERY
            if pause:
                target = t0 + pause * (b + 1)
                delay = target - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        _, val_probs = forward(x_val)
        val_loss = float(-np.log(val_probs[np.arange(len(y_val)), y_val] + 1e-12).mean())
        accuracy = float((val_probs.argmax(axis=1) == y_val).mean())
        train_loss = total_loss / batches
        job.metric(step=epoch, loss=train_loss, val_loss=val_loss, accuracy=accuracy)
        job.set_progress(epoch, epochs, unit="epoch", checkpoint=False)
        next_report = time.monotonic() + REPORT_EVERY
        job.log(
            f"epoch {epoch}/{epochs} loss {train_loss:.4f} "
            f"val_loss {val_loss:.4f} accuracy {accuracy:.3f}"
        )
        result = {"loss": train_loss, "val_loss": val_loss, "accuracy": accuracy}
    job.log(f"Training finished: accuracy {result.get('accuracy', 0.0):.3f}")
    return result


if __name__ == "__main__":
    print(main({"epochs": 2}))
