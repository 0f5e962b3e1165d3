"""Compare configurations (studies: vary one factor or a grid, several seeds) and search
hyperparameters (Optuna). Every run is a normal run folder under ``runs/<study>/``.

    from resnetlab.studies import load_study, run_study
    outcome = run_study(load_study("optimizer"), overrides=["train.epochs=3"])
    print(outcome.report)  # runs/optimizer/study.md
"""

from resnetlab.studies.runner import PlannedRun, StudyOutcome, plan_study, run_study
from resnetlab.studies.search import SearchOutcome, run_search
from resnetlab.studies.spec import SearchSpec, StudySpec, Variant, builtin_studies, load_search, load_study

__all__ = ["PlannedRun", "SearchOutcome", "SearchSpec", "StudyOutcome", "StudySpec", "Variant", "builtin_studies",
           "load_search", "load_study", "plan_study", "run_search", "run_study"]
