"""Planning: which model fits which device (fleet), and how many GPUs the cloud share needs (capacity).

Everything here runs without a GPU; only `profile_gpu` needs torch (imported lazily).
"""
