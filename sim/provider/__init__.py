"""The provider's response to its contract: what each outcome is worth to it (:mod:`.pricing`), its
decisions (:mod:`.decisions`), its cash (:mod:`.cash`), band profiles and the margin-neutral tariff
(:mod:`.profiles`), and :class:`.model.ProviderModel`, which answers the engine's questions
(:class:`sim.engine.provider.Provider`); what it did (:mod:`.outputs`) and why (:mod:`.features`).
"""
