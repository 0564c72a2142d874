"""obliviate.eval"""
