"""The configs compose, every choice instantiates, and the names users type exist."""

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import get_class, instantiate

from rnnlab.contract import InputKind
from rnnlab.errors import UserError
from rnnlab.run.build import build, create
from rnnlab.run.checks import check_model_fits_data
from tests.project import CONF_DIR, compose_train, module_installed

MODELS = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml") if not p.stem.startswith("_"))
OPTIMIZERS = sorted(p.stem for p in (CONF_DIR / "optimizer").glob("*.yaml"))


def test_defaults_follow_the_book():
    cfg = compose_train()
    assert cfg.model.cell == "lstm" and cfg.data.filename == "timemachine.txt"
    assert (cfg.data.batch_size, cfg.data.num_steps, cfg.data.preprocess, cfg.data.tokens) == (
        32,
        35,
        "d2l",
        "char",
    )
    assert cfg.data.sha1 == "090b5e7e70c295757f55df93cb0a180b9691891a"
    assert cfg.task.gradient_clip_val == 1.0 and cfg.task.tbptt_steps is None


# For each kind of input: the sizes a datamodule would give, an example batch, and the output shape.
EXAMPLES = {
    InputKind.TOKENS: (
        {"input_size": 28, "output_size": 28},
        torch.zeros(2, 5, dtype=torch.long),
        (2, 5, 28),
    ),
    InputKind.SEQUENCES: ({"input_size": 3, "output_size": 2}, torch.randn(2, 5, 3), (2, 5, 2)),
    InputKind.FEATURES: ({"input_size": 8, "output_size": 1}, torch.randn(4, 8), (4, 1)),
    InputKind.IMAGES: ({"input_size": [1, 28, 28], "output_size": 10}, torch.randn(2, 1, 28, 28), (2, 10)),
}


@pytest.mark.parametrize("model", MODELS)
def test_every_model_is_sized_by_the_data_it_accepts(model):
    cfg = compose_train(f"model={model}")
    assert not {"input_size", "output_size", "vocab_size"} & set(cfg.model)  # the data knows them
    accepts = get_class(cfg.model._target_).accepts
    if isinstance(cfg.model.get("embedding_dim"), int):  # a fixed-width embedding reads token ids only
        accepts = {InputKind.TOKENS}
    for kind in accepts:
        sizes, batch, shape = EXAMPLES[kind]
        outputs = instantiate(cfg.model, **sizes)(batch)
        outputs = outputs[0] if isinstance(outputs, tuple) else outputs  # recurrent nets add their state
        assert outputs.shape == shape


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("scheduler", sorted(p.stem for p in (CONF_DIR / "scheduler").glob("*.yaml")))
def test_every_optimizer_and_scheduler_is_a_partial(optimizer, scheduler):
    from rnnlab.run.build import scheduler_and_warmup

    cfg = compose_train(f"optimizer={optimizer}", f"scheduler={scheduler}")
    parameter = torch.nn.Parameter(torch.zeros(2))
    built = instantiate(cfg.optimizer)([parameter])
    assert isinstance(built, torch.optim.Optimizer) and built.param_groups[0]["params"] == [parameter]
    assert built.param_groups[0]["lr"] == cfg.optimizer.lr  # the config's settings reach the optimizer
    if "beta2" in cfg.optimizer:
        assert built.param_groups[0]["betas"] == (cfg.optimizer.beta1, cfg.optimizer.beta2)
    settings, warmup_steps = scheduler_and_warmup(cfg.scheduler)  # warmup_steps is rnnlab's, for any schedule
    assert warmup_steps == 0
    schedule = instantiate(settings)(built)
    kinds = (torch.optim.lr_scheduler.LRScheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    assert isinstance(schedule, kinds) and schedule.optimizer is built  # a scheduler of that optimizer


def test_the_override_names_users_type_exist():
    cfg = compose_train(
        "model.hidden_size=64",
        "model.num_layers=2",
        "model.dropout=0.1",
        "data.batch_size=8",
        "data.num_steps=12",
        "data.path=/some/file.txt",
        "data.preprocess=raw",
        "data.tokens=word",
        "data.sampling=random",
        "data.max_tokens=10000",
        "optimizer=sgd",
        "optimizer.lr=0.5",
        "trainer.max_epochs=3",
        "seed=1",
        "ckpt_path=/some/last.ckpt",
        "task.tbptt_steps=5",
        "task.gradient_clip_val=0.5",
    )
    assert cfg.model.hidden_size == 64 and cfg.optimizer.lr == 0.5 and cfg.data.seed == 1


@pytest.mark.parametrize(
    "group_choice", ["trainer=cpu", "trainer=gpu", "logger=csv", "debug=fdr", "debug=overfit"]
)
def test_other_groups_compose(group_choice):
    assert compose_train(group_choice).trainer._target_ == "lightning.pytorch.Trainer"


def test_debug_and_experiment_configs_set_what_they_promise():
    assert compose_train("debug=fdr").trainer.fast_dev_run is True
    overfit = compose_train("debug=overfit")  # a small corpus, many epochs; not Lightning's overfit_batches
    assert overfit.data.max_tokens == 2000 and "overfit_batches" not in overfit.trainer
    book = compose_train("experiment=d2l_lstm")
    assert (book.optimizer._target_, book.optimizer.lr, book.data.max_tokens) == (
        "torch.optim.SGD",
        1.0,
        10000,
    )
    assert book.trainer.max_epochs == 500


def test_text_data_needs_a_path():
    cfg = compose_train("data=text")
    assert cfg.data.url is None
    with pytest.raises(UserError, match="pass data.path=FILE"):
        create(cfg.data)


def test_everything_a_run_writes_is_aimed_at_its_run_directory(tmp_path: Path, repetitive_corpus):
    run_dir = tmp_path / "run"
    cfg = compose_train(
        "data=text", f"data.path={repetitive_corpus}", "data.batch_size=4", output_dir=str(run_dir)
    )
    _, task, trainer = build(cfg)
    assert Path(trainer.default_root_dir) == run_dir
    assert Path(trainer.checkpoint_callback.dirpath) == run_dir / "checkpoints"
    assert [Path(logger.log_dir) for logger in trainer.loggers] == [run_dir]  # events in the run dir itself
    assert task.network.head.out_features == len(task.vocab)  # sized by the data


def test_a_setting_the_data_does_not_take_is_one_line_naming_it():
    with pytest.raises(UserError, match=r"data=SineData does not take max_tokens .*~data.max_tokens"):
        build(compose_train("data=sine", "debug=overfit"))  # overfit shrinks the language model's corpus


def test_a_model_that_cannot_read_the_data_names_the_models_that_can():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["model=cnn", "data=timemachine", "paths.output_dir=/nowhere"])
        with pytest.raises(UserError) as error:
            check_model_fits_data(cfg)
    assert str(error.value).endswith("use model=awd_lstm|gru|lstm|rnn|rnn_cell|rnn_scratch")


@pytest.mark.parametrize(
    ("data", "task", "fits"),
    [
        ("timemachine", "regression", "language_model"),
        ("sine", "classification", "sequence_regression"),
        ("hello", "language_model", "classification"),
    ],
)
def test_a_task_that_does_not_take_what_the_data_hands_over_is_refused_before_any_data_is_read(
    data, task, fits, tmp_path
):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                f"data={data}",
                f"task={task}",
                "model=rnn",
                f"paths.output_dir={tmp_path}",
                f"paths.data_dir={tmp_path / 'empty'}",
            ],
        )
        with pytest.raises(UserError, match=f"does not fit data=.*; with data=.* use task={fits}, or leave"):
            build(cfg)
    assert not (tmp_path / "empty").exists()  # refused before the corpus was looked for


@pytest.mark.parametrize(
    ("data", "task"),
    [
        ("sine", "sequence_regression"),
        ("hello", "classification"),
        ("linear", "regression"),
        ("mnist", "classification"),
    ],
)
def test_the_data_picks_its_task_and_the_task_can_still_be_tuned(data, task):
    cfg = compose_train(f"data={data}", "task.gradient_clip_val=0.5")
    assert cfg.task._target_.endswith(
        {
            "sequence_regression": "SequenceRegressionTask",
            "classification": "ClassificationTask",
            "regression": "RegressionTask",
        }[task]
    )
    assert cfg.task.gradient_clip_val == 0.5


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("+trainer.max_epoch=5", r"trainer=.* does not take max_epoch .*~trainer.max_epoch"),
        (
            "+callbacks.model_checkpoint.every_n_epoch=2",
            r"callbacks.model_checkpoint does not take every_n_epoch",
        ),
        ("+callbacks.progress.colour=red", r"callbacks.progress does not take colour"),
    ],
)
def test_a_setting_the_trainer_or_a_callback_does_not_take_is_one_line(override, message, tmp_path):
    with pytest.raises(UserError, match=message):
        build(compose_train(override, output_dir=str(tmp_path)))


ABLATIONS = sorted(p.stem for p in (CONF_DIR / "ablation").glob("*.yaml"))
REGULARISERS = (
    "tie_weights",
    "embedding_dropout",
    "input_dropout",
    "dropout",
    "locked_dropout",
    "weight_dropout",
    "activation_reg",
    "temporal_activation_reg",
)


@pytest.mark.parametrize("ablation", ABLATIONS)
def test_each_ablation_takes_one_regulariser_the_preset_uses_away(ablation):
    preset = compose_train("experiment=timemachine_best").model
    ablated = compose_train("experiment=timemachine_best", f"+ablation={ablation}").model
    changed = {key for key in preset if preset[key] != ablated[key]}
    if ablation == "preset":
        assert not changed
    elif ablation == "no_regularisers":
        assert changed and all(not ablated[key] for key in REGULARISERS)
        assert (ablated.hidden_size, ablated.num_layers) == (preset.hidden_size, preset.num_layers)
    else:
        removed = {"no_ar_tar": {"activation_reg", "temporal_activation_reg"}}.get(
            ablation, {ablation.removeprefix("no_")}
        )
        assert changed == removed and not any(ablated[key] for key in removed)


def test_the_preset_search_tunes_settings_that_exist_and_keeps_the_test_split_unseen():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["hparams_search=timemachine_best"], return_hydra_config=True)
    assert cfg.test is False
    for key in cfg.hydra.sweeper.params:
        group, name = key.split(".")
        assert name in cfg[group], key
    preset = compose_train("experiment=timemachine_best")
    for key in ("num_layers", "hidden_size", "embedding_dim", "tie_weights", "locked_dropout"):
        assert preset.model[key] == cfg.model[key]  # the preset is a point of the space searched
    assert preset.trainer.max_epochs >= cfg.trainer.max_epochs  # the search ran shorter trials


def seconds(max_time: str) -> int:
    days, hours, minutes, secs = (int(part) for part in max_time.split(":"))
    return ((days * 24 + hours) * 60 + minutes) * 60 + secs


# (preset, its search, how many times the search's budget the preset gets)
SHAKESPEARE_PRESETS = [
    ("shakespeare_char_cpu", "shakespeare_char_cpu_bf16", 1),
    ("shakespeare_char", "shakespeare_char", 4),
]


@pytest.mark.parametrize(("preset_name", "search_name", "budget_ratio"), SHAKESPEARE_PRESETS)
def test_each_shakespeare_preset_is_a_point_of_its_search_with_the_budget_it_says(
    preset_name, search_name, budget_ratio
):
    from omegaconf import OmegaConf

    from rnnlab.search.search_space import search_space

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        search = compose("train", overrides=[f"hparams_search={search_name}"], return_hydra_config=True)
    preset = compose_train(f"experiment={preset_name}")
    assert preset.test is False and list(preset.data.splits) == [0.9, 0.1, 0.0]  # nanoGPT's val, no test
    # the trials' budget scaled (a little under, to keep start-up and the last validation inside)
    ratio = seconds(preset.trainer.max_time) / seconds(search.trainer.max_time)
    assert budget_ratio * 0.95 <= ratio <= budget_ratio
    space = search_space(dict(search.hydra.sweeper.params), [])
    for key, dimension in space.dimensions.items():
        value = OmegaConf.select(preset, key)
        if key == "trainer.max_epochs":
            value //= budget_ratio  # the decay stretched with the budget
        if dimension.kind == "choice":
            assert value in dimension.choices, key
        else:
            assert dimension.low <= value <= dimension.high, key
    fixed = ["model.num_layers", "model.hidden_size", "model.embedding_dim", "model.cell"]
    fixed += ["data.batch_size", "data.num_steps", "optimizer._target_", "scheduler._target_"]
    for key in (k for k in fixed if k not in space.dimensions):
        assert OmegaConf.select(preset, key) == OmegaConf.select(search, key), key  # held fixed


def test_the_awd_lstm_model_writes_down_the_published_settings():
    from rnnlab.models.recurrent import RecurrentNet

    model = compose_train("model=awd_lstm", "data.tokens=word").model
    network = RecurrentNet(11, 11, **{k: v for k, v in model.items() if not k.startswith("_")})
    assert network.rnn.sizes == [1150, 1150, 400] and network.head.weight is network.embedding.weight
    assert (model.dropout, model.hidden_dropout, model.input_dropout) == (0.4, 0.25, 0.4)
    assert (model.embedding_dropout, model.weight_dropout, model.activation_reg) == (0.1, 0.5, 2.0)


SEARCHES = sorted(path.stem for path in (CONF_DIR / "hparams_search").glob("*.yaml"))


@pytest.mark.parametrize("search", SEARCHES)
def test_every_search_composes_with_rnnlab_s_sweeper_and_searches_keys_that_exist(search):
    from omegaconf import OmegaConf

    from rnnlab.search.search_check import SWEEPER, check_keys
    from rnnlab.search.search_space import search_space

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"hparams_search={search}"], return_hydra_config=True)
    assert cfg.hydra.sweeper._target_ == SWEEPER and cfg.hydra.mode.name == "MULTIRUN"
    params = OmegaConf.to_container(cfg.hydra.sweeper.params)
    space = search_space(params, [])
    check_keys(cfg, space, params)  # raises for a key the config does not have
    assert set(space.dimensions) == set(params) and len(params) >= 2
    if module_installed("optuna"):
        assert all(d is not None for d in space.distributions().values())


@pytest.mark.parametrize(
    "choice",
    [f"hydra/sweeper/sampler={s}" for s in ("tpe", "random", "grid", "cmaes")]
    + [
        f"hydra/sweeper/pruner={p}"
        for p in ("none", "median", "successive_halving", "hyperband", "threshold")
    ],
)
def test_each_sampler_and_pruner_names_an_optuna_class(choice):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["hparams_search=lm_optuna", choice], return_hydra_config=True)
    node = cfg.hydra.sweeper[choice.split("/")[2].split("=")[0]]
    assert node._target_.startswith("optuna.")
    if module_installed("optuna"):
        assert get_class(node._target_) is not None


@pytest.mark.parametrize("preset", ["shakespeare_char_cpu", "shakespeare_char"])
def test_the_budget_levers_of_the_shakespeare_searches_build_at_their_far_ends(preset):
    """Each lever the searches add (warmup, beta2, tying, token shift, batch size), all at once: the
    settings are taken, the network ties and shifts, Adam gets the beta."""
    from rnnlab.run.build import scheduler_and_warmup
    from rnnlab.run.checks import check_arguments

    levers = ["scheduler.warmup_steps=300", "optimizer.beta2=0.99", "model.tie_weights=true"]
    cfg = compose_train(f"experiment={preset}", *levers, "model.token_shift=true", "data.batch_size=64")
    check_arguments(cfg)
    network = instantiate(cfg.model, input_size=65, output_size=65)
    assert network.head.weight is network.embedding.weight and network.token_shift is not None
    outputs, _ = network(torch.randint(65, (2, 7)))
    assert outputs.shape == (2, 7, 65)
    assert instantiate(cfg.optimizer)(network.parameters()).param_groups[0]["betas"][1] == 0.99
    assert scheduler_and_warmup(cfg.scheduler)[1] == 300
