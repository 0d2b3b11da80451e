"""The build stages, each a plain function from inputs to outputs.

compile, validate, precompile, bundle, sign, smoke.
"""
