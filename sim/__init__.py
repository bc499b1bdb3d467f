"""pbrsim: simulate drug and alcohol treatment systems and the payment-by-results contracts that pay for them.

parameterise -> simulate -> analyse:

>>> from sim import load_scenario, simulate, measures
>>> scenario = load_scenario("scenarios/west_kent.toml")    # doctest: +SKIP
>>> history = simulate(scenario, seed=1)                     # doctest: +SKIP
>>> measures.by_period(history, "year")                      # doctest: +SKIP
"""

from .history import History
from .pathway import simulate
from .scenario import Scenario, ScenarioError, load_scenario

__all__ = ["History", "Scenario", "ScenarioError", "load_scenario", "simulate"]
__version__ = "0.1.0"
