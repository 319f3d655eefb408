"""Golden vectors: reference inputs and outputs stored beside each bundle.

``golden.store`` reads and writes them with numpy alone; ``golden.generate`` computes
them from the PyTorch reference (and so needs torch).
"""
