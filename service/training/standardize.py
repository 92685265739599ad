"""Standardisation with the training split's statistics: x' = (x - mean) / std, per feature.

Inputs are standardised for every task, targets only for regression. Inference applies the same
statistics to its inputs and maps regression outputs back with `outputs`.
"""

from dataclasses import dataclass

import torch


def _mean_std(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # Population std (correction 0), as in scikit-learn's StandardScaler. A constant feature
    # gets std 1 so it maps to 0 instead of dividing by zero.
    std, mean = torch.std_mean(values, dim=0, correction=0)
    return mean, torch.where(std > 0, std, torch.ones_like(std))


@dataclass(frozen=True)
class Standardization:
    x_mean: torch.Tensor
    x_std: torch.Tensor
    y_mean: torch.Tensor | None = None
    y_std: torch.Tensor | None = None

    @classmethod
    def fit(cls, *, inputs: torch.Tensor, targets: torch.Tensor | None) -> "Standardization":
        """Statistics of the training split; pass targets only for regression."""
        x_mean, x_std = _mean_std(inputs)
        if targets is None:
            return cls(x_mean=x_mean, x_std=x_std)
        y_mean, y_std = _mean_std(targets)
        return cls(x_mean=x_mean, x_std=x_std, y_mean=y_mean, y_std=y_std)

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.x_mean.to(x.device)) / self.x_std.to(x.device)

    def targets(self, y: torch.Tensor) -> torch.Tensor:
        if self.y_mean is None or self.y_std is None:
            return y
        return (y - self.y_mean.to(y.device)) / self.y_std.to(y.device)

    def apply(self, data: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, targets) standardised; targets only if the statistics include them."""
        return self.inputs(data[0]), self.targets(data[1])

    def outputs(self, prediction: torch.Tensor) -> torch.Tensor:
        """A regression network's output in the targets' own units."""
        if self.y_mean is None or self.y_std is None:
            return prediction
        return prediction * self.y_std.to(prediction.device) + self.y_mean.to(prediction.device)

    def tensors(self) -> dict[str, torch.Tensor]:
        """The statistics under checkpoint keys `standardize.<name>`, y_* only when used."""
        named = {
            "x_mean": self.x_mean,
            "x_std": self.x_std,
            "y_mean": self.y_mean,
            "y_std": self.y_std,
        }
        return {f"standardize.{name}": t for name, t in named.items() if t is not None}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> "Standardization | None":
        if "standardize.x_mean" not in tensors:
            return None
        return cls(
            x_mean=tensors["standardize.x_mean"],
            x_std=tensors["standardize.x_std"],
            y_mean=tensors.get("standardize.y_mean"),
            y_std=tensors.get("standardize.y_std"),
        )
