"""The golden personalization step: SGD on the updatable head with the backbone frozen.

It mirrors what the updatable Core ML model declares: mean squared error between
sigmoid(logits) and multi-hot targets, averaged over the batch and the 325 tokens,
plain SGD (no momentum), full batch, no shuffle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from contracts.schema import OnDeviceTraining
from reference.personality import PersonalityModel


@dataclass(frozen=True)
class PersonalizationResult:
    initial: dict[str, np.ndarray]  # updatable parameters before the update
    updated: dict[str, np.ndarray]  # ... and after it
    losses: list[float]  # loss before each step
    changed: tuple[str, ...]  # every parameter whose value the update changed


def multi_hot_targets(training: OnDeviceTraining, vocab_size: int) -> np.ndarray:
    """``golden_examples`` rows with ``golden_tokens_per_example`` ones each, seeded."""
    rng = np.random.default_rng(training.golden_seed)
    targets = np.zeros((training.golden_examples, vocab_size), dtype=np.float32)
    for row in targets:
        row[rng.choice(vocab_size, training.golden_tokens_per_example, replace=False)] = 1.0
    return targets


def personalize(
    model: PersonalityModel, training: OnDeviceTraining, embedding: np.ndarray, target: np.ndarray
) -> PersonalizationResult:
    """Run ``training.epochs`` epochs on a copy of ``model``; ``model`` itself is untouched."""
    import copy

    if training.loss != "mean_squared_error" or training.optimizer != "sgd" or training.shuffle:
        raise ValueError("the reference step implements MSE + SGD without shuffling only")
    trained = copy.deepcopy(model).eval()  # eval: dropout off, as in the exported backbone
    before = {name: p.detach().clone() for name, p in trained.named_parameters()}
    names = set(training.updatable)
    for name, parameter in trained.named_parameters():
        parameter.requires_grad_(name in names)
    head = [p for name, p in trained.named_parameters() if name in names]
    optimizer = torch.optim.SGD(head, lr=training.learning_rate, momentum=0.0)
    inputs, targets = torch.from_numpy(embedding), torch.from_numpy(target)
    losses = []
    for _ in range(training.epochs):
        for start in range(0, len(inputs), training.mini_batch_size):
            rows = slice(start, start + training.mini_batch_size)
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(torch.sigmoid(trained(inputs[rows])), targets[rows])
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
    after = dict(trained.named_parameters())
    changed = tuple(name for name, value in before.items() if not torch.equal(value, after[name]))

    def numpy(params: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
        return {name: params[name].detach().numpy().copy() for name in training.updatable}

    return PersonalizationResult(numpy(before), numpy(after), losses, changed)
