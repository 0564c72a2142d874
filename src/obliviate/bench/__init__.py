"""obliviate.bench"""
