"""An MLP with Adam on a bundled table: the input-standardisation example of the slides.

    python -m rl_repr.main --config=configs/supervised_tabular.py --workdir=/tmp/raw
    python -m rl_repr.main --config=configs/supervised_tabular.py:standardized --workdir=/tmp/std

The slides use Boston house prices, which scikit-learn no longer ships; its bundled Wisconsin
breast-cancer table (569 tumours, 30 features, benign or malignant) has the same trouble in a
stronger form: feature means range from 0.004 (fractal dimension error) to 881 (worst area),
five orders of magnitude. Test (validation) = every 5th row: 456 training, 113 validation rows.
Two hidden layers of 64 ReLU units, Adam 1e-3, batch 32, 100 epochs, curves every 14 steps.
"""
from rl_repr.core.recipes import launch_arguments
from rl_repr.supervised.config import supervised_defaults


def get_config(arg: str | None = None):
    args = launch_arguments(arg, "configs/supervised_tabular.py", tokens=("standardized",),
                            values={"dataset": str})
    c = supervised_defaults()
    c.dataset = "tabular:" + args.get("dataset", "breast_cancer")
    c.standardize_inputs = "standardized" in args
    c.model.update(kind="mlp", hidden=(64, 64), activation="relu", norm="none")
    c.batch_size = 32
    c.epochs = 100.0
    c.optimizer = "adamw"
    c.base_lr = 1e-3
    c.lr_scaling = "none"
    c.weight_decay = 0.0
    c.end_lr = 1e-3              # constant learning rate, as in the slides' Keras example
    c.eval_every_steps = 14       # one evaluation per epoch
    c.monitor_train_examples = 0  # the curves score every training row
    c.log_every_steps = 14
    c.checkpoint_every_steps = 1000
    return c
