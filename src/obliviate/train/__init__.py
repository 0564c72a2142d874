"""obliviate.train"""
