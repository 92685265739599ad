"""A small loaded network for the inference unit tests: a real one, in eval mode."""

import torch

from service.inference.loading import LoadedNetwork


def loaded_network(
    *, key: tuple[str, int, str] = ("job", 1, "sha"), seed: int = 0
) -> LoadedNetwork:
    torch.manual_seed(seed)
    network = torch.nn.Sequential(
        torch.nn.Linear(3, 8),
        torch.nn.BatchNorm1d(8),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.5),
        torch.nn.Linear(8, 4),
    )
    # Running statistics that are not the defaults, so eval mode visibly uses them.
    network[1].running_mean.uniform_(-1, 1)
    network[1].running_var.uniform_(0.5, 2)
    network.eval()
    return LoadedNetwork(
        key=key,
        network=network,
        device=torch.device("cpu"),
        input_shape=(3,),
        task="classification",
        loss="cross_entropy",
        standardization=None,
    )
