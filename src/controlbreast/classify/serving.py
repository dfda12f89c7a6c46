"""The MLflow "model from code" of a classifier: MLflow copies this file into each logged model and
runs it when the model is loaded, so the model holds no pickled Python object.

``mlflow.models.set_model`` at import is MLflow's mechanism for this; nothing imports this module
but MLflow (see ``classify.predict.log_pyfunc``).
"""

from mlflow.models import set_model

from controlbreast.classify.predict import ClassifierModel

set_model(ClassifierModel())
