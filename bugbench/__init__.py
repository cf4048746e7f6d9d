"""bugbench: detectors of faults in Keras training programs, and the benchmark that scores them.

In your own training, a detector is a Keras callback::

    from bugbench import Diagnose

    model.fit(x, y, epochs=10, callbacks=[Diagnose()])   # prints findings with their fix; adds them to logs

Every detector the benchmark scores is here, as a ``keras.callbacks.Callback``
subclass (imported on first use, so ``import bugbench`` does not start
TensorFlow): ``Diagnose``, ``LayerTrend``, ``LayerTrendFaithful``, ``Symptoms``,
``TrainingProblems``, ``Structure``, and the Keras baselines
``TerminateOnNaNDetector``, ``EarlyStoppingLossDetector``,
``EarlyStoppingAccuracyDetector``, ``KerasUnionDetector``, and other tools as
their authors released them: ``AutoTrainer``, ``DeepDiagnosis``, ``Umlaut``
(``LayerTrendFaithful`` is DeepLocalize's). ``replay`` runs a
detector over a stored trace; ``main`` is the ``bugbench`` command.
"""

from __future__ import annotations

import functools

from detectors import registry
from harness import __version__

DETECTORS = {b.class_name: b.target for b in registry.TABLE if not b.stand_in}  # the registry's one table
OTHERS = {"replay": "detectors.base:replay", "Finding": "detectors.base:Finding", "Detector": "detectors.base:Detector",
          "main": "harness.cli:main"}

__all__ = ["__version__", "callback_class", *DETECTORS, *OTHERS]


@functools.cache
def callback_class(detector_cls: type) -> type:
    """``detector_cls`` as a ``keras.callbacks.Callback`` subclass (the detector's hooks come first)."""
    import keras

    return type(detector_cls.__name__, (detector_cls, keras.callbacks.Callback),
                {"__module__": "bugbench", "__doc__": detector_cls.__doc__, "__qualname__": detector_cls.__name__})


def __getattr__(name: str):
    if name in DETECTORS:
        return callback_class(registry.load(DETECTORS[name]))
    if name in OTHERS:
        return registry.load(OTHERS[name])
    raise AttributeError(f"module 'bugbench' has no attribute '{name}'")


def __dir__():
    return sorted(__all__)
