"""Views: what a person sees of sections.

``units`` (display units: eV, Å, GPa, ps; stored values never change; the ``"molar"``
context), ``display`` (text and HTML trees, the archive summary), ``dataframe`` (pandas
tables), ``ase`` (structures and trajectories), ``plots`` (DOS, bands, MD, optimisation).

They consume sections and nothing below them imports them (except the IPython display hook,
the one sanctioned deferred import). pandas, ASE and matplotlib are imported only when used.
"""
