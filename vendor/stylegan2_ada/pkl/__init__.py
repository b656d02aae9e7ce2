"""Import of reference StyleGAN2-ADA `.pkl` snapshots without running their code.

`unpickle` reads the pickle stream with an allow-list (tensors and inert records only),
`configs` turns the records' constructor arguments into our typed configs, and `importer`
checks every tensor against the networks those configs build.
"""
