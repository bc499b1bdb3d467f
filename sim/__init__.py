"""pbrsim: simulate drug and alcohol treatment systems and the payment-by-results contracts that pay for them.

parameterise -> simulate -> analyse:

>>> from sim import load_scenario, simulate, measures
>>> scenario = load_scenario("scenarios/west_kent.toml")    # doctest: +SKIP
>>> history = simulate(scenario, seed=1)                     # doctest: +SKIP
>>> measures.by_period(history, "year")                      # doctest: +SKIP
"""

from sim.analysis import measures
from sim.config.scenario import Scenario, ScenarioError, load_scenario
from sim.core.version import __version__
from sim.engine.history import History
from sim.engine.system import simulate

__all__ = ["History", "Scenario", "ScenarioError", "__version__", "load_scenario", "measures", "simulate"]
