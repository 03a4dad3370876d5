"""Layer graphs on networkx: shapes, receptive fields, parameters and MACs of whole networks.

:mod:`.receptive` holds the per-axis receptive-field algebra, :mod:`.layers` the layer kinds
(each knows its output shape, parameters, MACs and field map), :mod:`.graph` the
:class:`~convalgebra.network.graph.LayerGraph` that composes them, :mod:`.zoo` the built-in
networks and :mod:`.tabulate` the per-layer table in text, Markdown, CSV and JSON. This side
of the library loads neither scipy nor torch.
"""
