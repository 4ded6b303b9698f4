"""Studies built on the OpenMMLab tools: the comparison of DRNs with
MMSegmentation's dilated ResNets on the demo data (:mod:`.compare`), its
figures (:mod:`.figures`) and backbone activation maps
(:mod:`.activation_maps`).

Nothing here is registered; ``tools/analysis_tools/compare.py`` and
``tools/analysis_tools/activation_maps.py`` are the command lines.
"""
