"""Views: what a person sees of sections (text and HTML, DataFrames, ASE atoms).

They consume sections and nothing below them imports them (except the IPython display hook,
the one sanctioned deferred import). pandas and ASE are imported only when used.
"""
