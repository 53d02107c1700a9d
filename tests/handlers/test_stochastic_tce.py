import json
import math
import textwrap

import numpy as np
import pytest
import torch
from ignite.engine import Engine, Events
from monai.bundle import ConfigParser
from monai.data import DataLoader, Dataset
from monai.engines import SupervisedTrainer
from monai.handlers import MLFlowHandler, from_engine
from monai.utils import path_to_sqlite_uri

from monai_gamble.data import ClassConditionalBatchSampler, class_presence, make_multiclass_blobs
from monai_gamble.handlers import StochasticTCEHandler
from monai_gamble.losses import CrossEntropyLoss, TiltedCrossEntropyLoss

PRESENCE = np.array([[1, 1, 0], [1, 0, 1], [1, 1, 1], [1, 0, 0]], dtype=bool)


def direct_weights(updates, t, gamma, num_classes, initial_loss=0.0):
    """Algorithm 1, lines 6-8, literally (no logs), from L~_c = exp(t * initial_loss)."""
    tilted = np.full(num_classes, math.exp(t * initial_loss))
    history = []
    for c, loss in updates:
        tilted[c] = (1 - gamma) * tilted[c] + gamma * math.exp(t * loss)
        history.append(tilted / tilted.sum())
    return history


@pytest.mark.parametrize(
    "t, gamma, initial_loss", [(1.0, 0.1, 0.0), (0.1, 0.5, 0.3), (-2.0, 0.2, 0.0), (3.0, 1.0, 1.0)]
)
def test_update_rule_against_hand_computation(t, gamma, initial_loss):
    sampler = ClassConditionalBatchSampler(PRESENCE, batch_size=1)
    handler = StochasticTCEHandler(sampler, t=t, gamma=gamma, initial_loss=initial_loss)
    np.testing.assert_allclose(sampler.weights, [1 / 3] * 3)
    updates = [(0, 0.9), (1, 2.5), (1, 0.2), (2, 1.7), (0, 3.0), (2, 0.05)]
    for (c, loss), expected in zip(updates, direct_weights(updates, t, gamma, 3, initial_loss)):
        w = handler.update(c, loss)
        np.testing.assert_allclose(w.numpy(), expected, rtol=1e-12)
        np.testing.assert_allclose(sampler.weights, expected, rtol=1e-12)
    # the running mean of the class-0 batch losses, by hand
    m0 = initial_loss
    for c, loss in updates:
        if c == 0:
            m0 = (1 - gamma) * m0 + gamma * loss
    assert handler.running_loss[0].item() == pytest.approx(m0)
    assert handler.draws.tolist() == [2, 2, 2]


def test_gamma_one_and_the_first_update():
    sampler = ClassConditionalBatchSampler(PRESENCE, batch_size=1)
    handler = StochasticTCEHandler(sampler, t=2.0, gamma=1.0, initial_loss=0.0)
    handler.update(1, 0.5)  # gamma = 1: L~_1 = exp(t L_B) = e, the others stay exp(0) = 1
    assert handler.log_tilted_loss.tolist() == pytest.approx([0.0, 1.0, 0.0])
    np.testing.assert_allclose(sampler.weights, np.array([1, math.e, 1]) / (2 + math.e))
    assert handler.values()["stce_tilted_loss_1"] == pytest.approx(0.5)  # (1/t) log L~_1


PRESENCE4 = np.ones((4, 4), dtype=bool)


def test_initial_loss_defaults_to_ln_c():
    """The issue's numbers: t = 1, gamma = 0.1, C = 4, a first batch loss of ln 4 (an untrained
    network's cross-entropy). From 0 the drawn class gets 0.302 against 0.233 for each of the
    others; from ln C (the default) the weights stay uniform."""
    ln4 = math.log(4.0)
    biased = StochasticTCEHandler(
        ClassConditionalBatchSampler(PRESENCE4, batch_size=1), t=1.0, gamma=0.1, initial_loss=0.0
    )
    w = biased.update(2, ln4).numpy()
    # L~_2 = 0.9 * 1 + 0.1 * e^{ln 4} = 1.3, the others 1: weights 1.3 / 4.3 and 1 / 4.3
    np.testing.assert_allclose(w, [1 / 4.3, 1 / 4.3, 1.3 / 4.3, 1 / 4.3], rtol=1e-12)
    assert round(w[2], 3) == 0.302 and round(w[0], 3) == 0.233
    sampler = ClassConditionalBatchSampler(PRESENCE4, batch_size=1)
    default = StochasticTCEHandler(sampler, t=1.0, gamma=0.1)
    assert default.initial_loss == pytest.approx(ln4)
    assert default.running_loss.tolist() == pytest.approx([ln4] * 4)
    np.testing.assert_allclose(default.update(2, ln4).numpy(), [0.25] * 4, rtol=1e-12)
    np.testing.assert_allclose(sampler.weights, [0.25] * 4, rtol=1e-12)
    # and it is Algorithm 1 from L~_c = exp(t ln C) = C^t
    updates = [(0, 2.0), (3, 0.4), (2, 1.1)]
    for (c, loss), expected in zip(updates, direct_weights(updates, 1.0, 0.1, 4, ln4)):
        np.testing.assert_allclose(default.update(c, loss).numpy(), expected, rtol=1e-12)


def test_no_overflow_in_log_space():
    sampler = ClassConditionalBatchSampler(PRESENCE, batch_size=1)
    handler = StochasticTCEHandler(sampler, t=100.0, gamma=0.1)
    with np.errstate(over="ignore"):
        assert np.isinf(np.exp(100.0 * 100.0))  # what the direct rule would hold
    handler.update(2, 100.0)  # t * L = 1e4
    handler.update(0, 99.0)  # t * L = 9900
    w = sampler.weights
    assert np.isfinite(w).all() and w[2] == pytest.approx(1.0) and w.sum() == pytest.approx(1.0)
    # log L~_2 = log(0.9 + 0.1 e^{1e4}) = log(0.1) + 1e4 (to double precision)
    assert handler.log_tilted_loss[2].item() == pytest.approx(math.log(0.1) + 1e4)
    assert handler.values()["stce_tilted_loss_2"] == pytest.approx(100.0 + math.log(0.1) / 100.0)


def test_t_zero_keeps_uniform_weights_and_unavailable_classes_get_none():
    presence = PRESENCE.copy()
    presence[:, 2] = False
    sampler = ClassConditionalBatchSampler(presence, batch_size=1)
    handler = StochasticTCEHandler(sampler, t=0.0, gamma=0.3)
    for c, loss in [(0, 5.0), (1, 0.1), (0, 2.0)]:
        handler.update(c, loss)
    np.testing.assert_allclose(sampler.weights, [0.5, 0.5, 0.0])
    assert handler.values()["stce_tilted_loss_0"] == handler.values()["stce_loss_0"]  # t = 0: the running loss


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"t": float("nan")}, "t must be a finite number"),
        ({"gamma": 0.0}, r"gamma must lie in \(0, 1\]"),
        ({"gamma": 1.5}, r"gamma must lie in \(0, 1\]"),
        ({"gamma": "fast"}, "gamma must be a number"),
        ({"initial_loss": float("inf")}, "initial_loss must be finite"),
        ({"class_names": ["a", "b"]}, "name the 3 classes"),
    ],
)
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        StochasticTCEHandler(ClassConditionalBatchSampler(PRESENCE, batch_size=1), **kwargs)


def test_non_finite_batch_loss_is_an_error():
    handler = StochasticTCEHandler(ClassConditionalBatchSampler(PRESENCE, batch_size=1))
    with pytest.raises(ValueError, match="non-finite batch loss"):
        handler.update(0, float("nan"))


def blob_trainer(sampler, epochs=2, loss=None):
    data = make_multiclass_blobs(num_images=8, image_size=(16, 16), seed=0)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 1))
    return SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=epochs,
        train_data_loader=DataLoader(Dataset(data), batch_sampler=sampler),
        network=net,
        optimizer=torch.optim.SGD(net.parameters(), lr=0.1),
        loss_function=loss or CrossEntropyLoss(),
    )


def blob_sampler(num_batches=3, seed=0):
    data = make_multiclass_blobs(num_images=8, image_size=(16, 16), seed=0)
    presence = class_presence([d["label"] for d in data], num_classes=4)
    return ClassConditionalBatchSampler(presence, batch_size=2, num_batches=num_batches, seed=seed)


def test_supervised_trainer_updates_with_the_trainer_loss():
    """A few iterations of MONAI's SupervisedTrainer (decollated output): the handler sees every
    batch loss, in order, with the class the batch was drawn for."""
    sampler = blob_sampler()
    trainer = blob_trainer(sampler)
    handler = StochasticTCEHandler(sampler, t=1.0, gamma=0.2, class_names=["bg", "large", "small", "rare"])
    handler.attach(trainer)
    seen = []
    trainer.add_event_handler(
        Events.ITERATION_COMPLETED,
        lambda e: seen.append((sampler.last_class, from_engine(["loss"], first=True)(e.state.output))),
    )
    trainer.run()
    assert isinstance(trainer.state.output, list)  # decollated: the default output transform copes
    assert len(seen) == 6
    expected = direct_weights([(c, float(loss)) for c, loss in seen], 1.0, 0.2, 4, math.log(4))[-1]
    np.testing.assert_allclose(handler.weights.numpy(), expected, rtol=1e-9)
    np.testing.assert_allclose(sampler.weights, expected, rtol=1e-9)
    metrics = trainer.state.metrics  # no MLflow handler: the values go to the engine state
    assert metrics["stce_weight_rare"] == pytest.approx(expected[3])
    assert sum(metrics[f"stce_draws_{n}"] for n in ["bg", "large", "small", "rare"]) == 3  # per epoch


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")  # inside MLflow's SQL store
def test_supervised_trainer_logs_to_mlflow_every_epoch(tmp_path):
    sampler = blob_sampler()
    trainer = blob_trainer(sampler, epochs=3)
    mlflow_handler = MLFlowHandler(
        tracking_uri=path_to_sqlite_uri(tmp_path / "mlruns.db"),
        experiment_name="tce",
        run_name="stce",
        iteration_log=False,
        close_on_complete=False,
    )
    mlflow_handler.attach(trainer)
    handler = StochasticTCEHandler(sampler, t=1.0, gamma=0.1, mlflow_handler=mlflow_handler)
    handler.attach(trainer)
    trainer.run()
    client, run_id = mlflow_handler.client, mlflow_handler.cur_run.info.run_id
    history = client.get_metric_history(run_id, "stce_weight_3")
    assert [m.step for m in history] == [1, 2, 3]
    assert history[-1].value == pytest.approx(float(handler.weights[3]))
    total = sum(client.get_metric_history(run_id, f"stce_draws_{c}")[-1].value for c in range(4))
    assert total == 3
    assert "stce_weight_3" not in trainer.state.metrics  # logged once, through the MLflow handler
    mlflow_handler.close()


CONFIG = {
    "imports": ["$import torch", "$import monai", "$import monai_gamble"],
    "loss_name": "tce_class",
    "t": 1.0,
    "gamma": 0.1,
    "num_classes": 4,
    "batch_size": 2,
    "stochastic": "$@loss_name == 'stochastic_tce'",
    "not_stochastic": "$not @stochastic",
    "datalist": "$monai_gamble.data.make_multiclass_blobs(num_images=8, image_size=(16, 16), seed=0)",
    "network": {"_target_": "torch.nn.Conv2d", "in_channels": 1, "out_channels": 4, "kernel_size": 3, "padding": 1},
    "loss": {"_target_": "monai_gamble.losses.tilted_loss", "method": "@loss_name", "t": "@t"},
    "optimizer": {"_target_": "torch.optim.SGD", "params": "$@network.parameters()", "lr": 0.1},
    "train": {
        "dataset": {"_target_": "Dataset", "data": "@datalist"},
        "batch_sampler": {
            "_target_": "monai_gamble.data.ClassConditionalBatchSampler",
            "class_presence": "$monai_gamble.data.class_presence([d['label'] for d in @datalist], @num_classes)",
            "batch_size": "@batch_size",
            "seed": 0,
        },
        "dataloader": {
            "_target_": "DataLoader",
            "dataset": "@train#dataset",
            "batch_sampler": "$@train#batch_sampler if @stochastic else None",
            "batch_size": "$1 if @stochastic else @batch_size",
            "shuffle": "@not_stochastic",
        },
        "handlers": [
            {
                "_target_": "monai_gamble.handlers.StochasticTCEHandler",
                "_disabled_": "@not_stochastic",
                "sampler": "@train#batch_sampler",
                "t": "@t",
                "gamma": "@gamma",
            }
        ],
        "trainer": {
            "_target_": "SupervisedTrainer",
            "max_epochs": 2,
            "device": "$torch.device('cpu')",
            "train_data_loader": "@train#dataloader",
            "network": "@network",
            "loss_function": "@loss",
            "optimizer": "@optimizer",
            "train_handlers": "@train#handlers",
        },
    },
}


@pytest.mark.parametrize("loss_name", ["tce_image", "tce_class", "stochastic_tce"])
def test_selectable_by_name_in_a_bundle_config(loss_name):
    parser = ConfigParser(CONFIG)
    parser["loss_name"] = loss_name
    parser["t"] = 0.5
    trainer = parser.get_parsed_content("train#trainer")
    trainer.run()
    assert trainer.state.iteration == 8  # 2 epochs of 8 images in batches of 2
    loss = parser.get_parsed_content("loss")
    if loss_name == "stochastic_tce":
        assert type(loss) is CrossEntropyLoss
        sampler = parser.get_parsed_content("train#batch_sampler")
        assert trainer.data_loader.batch_sampler is sampler
        assert not np.allclose(sampler.weights, 0.25)  # the handler moved the weights
        assert "stce_weight_3" in trainer.state.metrics
    else:
        assert isinstance(loss, TiltedCrossEntropyLoss) and loss.t == 0.5
        assert loss.level.value == loss_name.split("_")[1]
        assert "stce_weight_3" not in trainer.state.metrics


DDP_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import torch
    import torch.distributed as dist
    from ignite.engine import Engine, Events
    from torch.utils.data import DataLoader
    from monai_gamble.data import ClassConditionalBatchSampler
    from monai_gamble.handlers import StochasticTCEHandler

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    presence = np.ones((16, 3), dtype=bool)
    presence[::2, 2] = False
    sampler = ClassConditionalBatchSampler(presence, batch_size=2, num_batches=10, seed=4)  # rank from dist
    handler = StochasticTCEHandler(sampler, t=1.0, gamma=0.3)
    classes, batches, losses = [], [], []

    def step(engine, batch):
        loss = float(batch.sum()) / 10.0 + rank  # differs between the ranks
        losses.append(loss)
        return {"loss": torch.tensor(loss, dtype=torch.float64)}

    engine = Engine(step)
    handler.attach(engine)
    engine.add_event_handler(Events.ITERATION_COMPLETED, lambda e: classes.append(sampler.last_class))
    engine.add_event_handler(Events.ITERATION_COMPLETED, lambda e: batches.append(e.state.batch.tolist()))
    engine.run(DataLoader(list(range(16)), batch_sampler=sampler), max_epochs=2)
    out = {"rank": rank, "classes": classes, "batches": batches, "losses": losses,
           "weights": handler.weights.tolist(), "shards": [s.tolist() for s in sampler.shard_indices]}
    json.dump(out, open(sys.argv[1] + f"/rank{rank}.json", "w"))
    dist.destroy_process_group()
    """
)


@pytest.mark.slow
def test_two_processes_keep_the_same_weights(tmp_path, torchrun):
    torchrun(DDP_SCRIPT, tmp_path)
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2))
    assert r0["classes"] == r1["classes"] and len(r0["classes"]) == 20  # the same class draws
    np.testing.assert_allclose(r0["weights"], r1["weights"], rtol=1e-12)  # kept equal by the all-reduce
    for c in range(3):
        assert not set(r0["shards"][c]) & set(r1["shards"][c])  # disjoint shards
    for r in (r0, r1):
        for cls, batch in zip(r["classes"], r["batches"]):
            assert set(batch) <= set(r["shards"][cls])
    # the weights are those of the update rule applied to the mean of the two ranks' losses
    mean_losses = (np.array(r0["losses"]) + np.array(r1["losses"])) / 2
    expected = direct_weights(list(zip(r0["classes"], mean_losses)), 1.0, 0.3, 3, math.log(3))[-1]
    np.testing.assert_allclose(r0["weights"], expected, rtol=1e-9)


def test_plain_ignite_engine_with_a_custom_output_transform():
    sampler = ClassConditionalBatchSampler(PRESENCE, batch_size=1, num_batches=4, seed=0)
    handler = StochasticTCEHandler(sampler, t=1.0, gamma=0.5, output_transform=lambda out: out[1])
    engine = Engine(lambda e, batch: ("ignored", float(len(batch))))
    handler.attach(engine)
    engine.run(DataLoader(list(range(4)), batch_sampler=sampler), max_epochs=1)
    assert int(handler.draws.sum()) == 4
    bad = StochasticTCEHandler(sampler)
    engine = Engine(lambda e, batch: 1.0)
    bad.attach(engine)
    with pytest.raises(ValueError, match="output_transform"):
        engine.run(DataLoader(list(range(4)), batch_sampler=sampler), max_epochs=1)
