"""obliviate.attacks"""
