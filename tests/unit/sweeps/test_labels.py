"""A sweep's curves are labelled by the params that differ between trials, in short."""

from service.sweeps.labels import short_labels

SGD = {"name": "sgd", "lr": 0.001}
ADAM = {"name": "adam", "lr": 0.001}
LINEAR = [{"type": "Linear", "out_features": 100}, {"type": "Linear", "out_features": 3}]
RELU = [LINEAR[0], {"type": "ReLU"}, LINEAR[1]]


def test_objects_read_by_name_lists_by_their_items_and_equal_params_are_left_out() -> None:
    params = [
        {"optimizer": SGD, "model.layers": LINEAR, "epochs": 5},
        {"optimizer": ADAM, "model.layers": RELU, "epochs": 5},
    ]

    assert short_labels(params) == [
        "optimizer=sgd, layers=Linear-Linear",
        "optimizer=adam, layers=Linear-ReLU-Linear",
    ]


def test_a_path_is_cut_to_its_shortest_tail_that_no_other_shares() -> None:
    params = [
        {"model.layers.1.type": "ReLU", "optimizer.lr": 0.1, "scheduler.lr": 0.5},
        {"model.layers.1.type": "Tanh", "optimizer.lr": 0.01, "scheduler.lr": 0.25},
    ]

    assert short_labels(params) == [
        "type=ReLU, optimizer.lr=0.1, scheduler.lr=0.5",
        "type=Tanh, optimizer.lr=0.01, scheduler.lr=0.25",
    ]


def test_values_that_read_the_same_in_short_are_written_whole() -> None:
    params = [{"optimizer": ADAM}, {"optimizer": {"name": "adam", "lr": 0.1}}]

    assert short_labels(params) == [
        'optimizer={"lr":0.001,"name":"adam"}',
        'optimizer={"lr":0.1,"name":"adam"}',
    ]


def test_trials_with_nothing_different_are_numbered() -> None:
    assert short_labels([{"seed": 1}, {"seed": 1}]) == ["trial 0", "trial 1"]
