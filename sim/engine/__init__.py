"""The simulation: the SimPy treatment system with one generator per pathway stage (:mod:`.system`), its
places (:mod:`.capacities`), referrals (:mod:`.population`), TOP reviews (:mod:`.reviews`), the recorder and the
History it returns (:mod:`.history`). SimPy's internals are used in :mod:`.kernel` only. The provider is met
through one seam, :mod:`.provider`.
"""
