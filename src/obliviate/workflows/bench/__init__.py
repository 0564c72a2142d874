"""obliviate.workflows.bench"""
